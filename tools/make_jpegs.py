#!/usr/bin/env python3
"""Writes COUNT photographic JPEGs of SIZE x SIZE for the serving benchmark (tools/serve_bench.sh): random
crops, scales and mirror images of the bundled sample, saved at quality 90 by PIL. Nothing is downloaded.

    make_jpegs.py --out DIR [--count 64] [--size 224] [--seed 0]
"""
import argparse
import os
import random

from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default=os.path.join(os.path.dirname(__file__), "..", "examples", "data", "sample.jpg"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    source = Image.open(args.source).convert("RGB")
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.count):
        side = rng.randint(min(source.size) // 2, min(source.size))
        left = rng.randint(0, source.width - side)
        top = rng.randint(0, source.height - side)
        image = source.crop((left, top, left + side, top + side)).resize((args.size, args.size), Image.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image.save(os.path.join(args.out, f"image{i:04d}.jpg"), quality=90)
    print(f"make_jpegs: {args.count} JPEGs of {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
