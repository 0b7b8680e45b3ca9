#!/usr/bin/env python3
"""The GPU's int8 ResNet schemes emulated in fp32 on an oracle fixture, against the fixture's logits.

Usage: python3 tools/int8_resnet_emulation.py FIXTURE_DIR resnet50_224 [--calibration 32]
           [--schemes fp32,s8,zero_point] [--keep-blocks 0,3] [--stem-fp]

Schemes (every convolution but the first in int8: s8 weights with one step per output channel,
activations fake-quantized in their calibrated steps; convolutions, bias and residual adds in fp32):
  s8          the first GPU version: s8 activations (7 bits for never-negative ones), the residual
              stream in floating point, quantized only for the next block's readers.
  zero_point  the second: never-negative activations at u8's resolution (s8 shifted by -128), and the
              residual stream itself quantized (the next block's last convolution adds it as stored);
              a downsampling shortcut writes floating point.
Calibration: N(0,1) images of another seed than the fixture's, visopt's least-squared-error clip
(services/calibration.hpp: a 2048-bin |x| histogram, 255 levels for never-negative tensors, else 127).
--keep-blocks runs those bottleneck/basic blocks (0-based, in order) in fp32; --stem-fp leaves the
first block's input unquantized. Emulated s8 matched the H100's measured cosines within 0.0005
(resnet18_64 0.99740 against 0.99728, resnet50_224 0.98485-0.98500 against 0.98524; docs/performance.md).
torch 1.13 on 2 CPU cores: seconds per fixture at 64 px, about 15 s at 224."""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

BINS = 2048


def least_squared_error_clip(values, levels):
    """The clip (a bin edge of a 2048-bin |x| histogram) with the least quantization error; as
    RangeObserver::least_squared_error_clip."""
    magnitudes = values.abs().flatten().double()
    amax = magnitudes.max().item()
    if amax == 0:
        return 1.0
    counts = torch.histc(magnitudes, bins=BINS, min=0, max=amax)
    width = amax / BINS
    centres = (torch.arange(BINS, dtype=torch.float64) + 0.5) * width
    last = int((counts > 0).nonzero().max().item()) + 1
    best, best_error = amax, None
    for edge in range(max(1, last // 16), last + 1):
        clip = width * edge
        step = clip / levels
        excess = centres[edge:last] - clip
        error = (counts[edge:last] * excess * excess).sum().item() + counts[:edge].sum().item() * step * step / 12
        if best_error is None or error < best_error:
            best, best_error = clip, error
    return min(best, amax)


def fake_quantize(x, clip, levels, signed):
    step = clip / levels
    return torch.clamp(torch.round(x / step), -levels - 1 if signed else 0, levels) * step


def channel_quantized(weight):
    """s8 weights, one step per output channel (max / 127), back in fp32."""
    step = (weight.flatten(1).abs().max(1).values.clamp_min(1e-30) / 127).view(-1, 1, 1, 1)
    return torch.clamp(torch.round(weight / step), -127, 127) * step


def folded(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv, conv.weight * scale.view(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class Emulation:
    def __init__(self, model, keep_blocks=(), stem_fp=False):
        self.model, self.keep, self.stem_fp = model, set(keep_blocks), stem_fp
        self.stem = folded(model.conv1, model.bn1)
        self.blocks = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for b in layer:
                convs = [folded(b.conv1, b.bn1), folded(b.conv2, b.bn2)]
                if hasattr(b, "conv3"):
                    convs.append(folded(b.conv3, b.bn3))
                shortcut = folded(b.downsample[0], b.downsample[1]) if b.downsample is not None else None
                self.blocks.append((convs, shortcut))
        self.ranges, self.seen = {}, None

    @staticmethod
    def conv(x, layer, quantized):
        module, weight, bias = layer
        return torch.nn.functional.conv2d(x, channel_quantized(weight) if quantized else weight, bias, module.stride,
                                          module.padding)

    def observe(self, name, t):
        if self.seen is not None:
            self.seen.setdefault(name, []).append(t.detach().flatten())

    def quantized(self, name, t, scheme):
        if scheme == "fp32":
            return t
        clip, non_negative = self.ranges[name]
        if scheme == "s8":  # the first version: the clip chosen for its own type, 127 steps either way
            return fake_quantize(t, clip, 127, True)
        return fake_quantize(t, clip, 255 if non_negative else 127, not non_negative)

    def act(self, name, t, scheme):
        self.observe(name, t)
        return self.quantized(name, t, scheme)

    def forward(self, x, scheme):
        q = scheme != "fp32"
        stem = torch.relu(self.conv(x, self.stem, False))
        self.observe("stem", stem)  # visopt calibrates conv.0's output; max pooling keeps its step
        stream = self.model.maxpool(stem)
        stream_q = stream if self.stem_fp else self.quantized("stem", stream, scheme)
        for i, (convs, shortcut_layer) in enumerate(self.blocks):
            quantize = q and i not in self.keep
            a = stream_q
            for j, layer in enumerate(convs[:-1]):
                a = torch.relu(self.conv(a, layer, quantize))
                a = self.act(f"b{i}c{j}", a, scheme) if quantize or self.seen is not None else a
            if shortcut_layer is not None:
                shortcut = self.conv(stream_q, shortcut_layer, quantize)
            else:
                shortcut = stream_q if (scheme == "zero_point" and i > 0) else stream
            stream = torch.relu(self.conv(a, convs[-1], quantize) + shortcut)
            stream_q = self.act(f"b{i}out", stream, scheme)
        pooled = self.model.avgpool(stream_q if scheme == "zero_point" else stream)
        return self.model.fc(torch.flatten(pooled, 1))

    def calibrate(self, images):
        self.seen = {}
        for chunk in images.split(8):
            self.forward(chunk, "fp32")
        for name, parts in self.seen.items():
            values = torch.cat(parts)
            non_negative = bool((values >= 0).all())
            self.ranges[name] = (least_squared_error_clip(values, 255 if non_negative else 127), non_negative)
        self.seen = None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixture_dir")
    parser.add_argument("fixture", help="a ResNet fixture: resnet18_64, resnet50_64, resnet50_224, ...")
    parser.add_argument("--calibration", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--schemes", default="fp32,s8,zero_point")
    parser.add_argument("--keep-blocks", default="", help="blocks run in fp32, comma-separated 0-based indices")
    parser.add_argument("--stem-fp", action="store_true", help="the first block reads the stem's output unquantized")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    arch = args.fixture.split("_")[0]
    model = getattr(torchvision.models, arch)()
    model.load_state_dict(read_safetensors(os.path.join(args.fixture_dir, f"{args.fixture}.weights.safetensors"))[0])
    model.eval()
    io = read_safetensors(os.path.join(args.fixture_dir, f"{args.fixture}.io.safetensors"))[0]
    images, logits = io["input"], io["logits"]
    keep = [int(v) for v in args.keep_blocks.split(",") if v]
    emulation = Emulation(model, keep, args.stem_fp)
    with torch.no_grad():
        size = images.shape[-1]
        emulation.calibrate(torch.randn(args.calibration, 3, size, size, generator=torch.Generator().manual_seed(1)))
        for scheme in args.schemes.split(","):
            out = torch.cat([emulation.forward(chunk, scheme) for chunk in images.split(8)])
            cosine = torch.nn.functional.cosine_similarity(out.double().flatten(), logits.double().flatten(), dim=0).item()
            top1 = (out.argmax(1) == logits.argmax(1)).float().mean().item()
            print(f"{args.fixture} {scheme}: cosine {cosine:.5f} top-1 {top1:.4f}", flush=True)


if __name__ == "__main__":
    main()
