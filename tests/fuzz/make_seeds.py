#!/usr/bin/env python3
"""Writes the fuzz seed corpora under tests/fuzz/corpus/ (committed; rerun only to change them).

Each seed is small: valid files of every kind the readers accept, and malformed ones that reach each
check (truncations, absurd sizes, bad JSON, overlapping offsets, a 60000x60000 PNG header, ...).
Needs only the standard library and PIL (python3-pil)."""
import io, json, os, struct, zlib
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))


def write(kind, name, data):
    directory = os.path.join(here, "corpus", kind)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def safetensors(header, data=b"", declared=None):
    text = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text) if declared is None else declared) + text + data


f32 = struct.pack("<4f", 1.5, -2.0, 0.25, 3.0)
write("safetensors", "valid_f32", safetensors(
    {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32))
write("safetensors", "valid_mixed", safetensors(
    {"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
     "i": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}, "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [16, 16]}},
    bytes(range(16))))
write("safetensors", "empty_header", safetensors({}))
write("safetensors", "truncated", b"\x10\x00\x00")
write("safetensors", "header_past_end", safetensors({}, declared=1000))
write("safetensors", "not_json", safetensors(b'{"x": {"dtype": "F32",'))
write("safetensors", "overlap", safetensors(
    {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "c": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}}, f32))
write("safetensors", "overflow", safetensors({"x": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 0]}}))
write("safetensors", "duplicate", safetensors(
    b'{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"ab"))


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


rgb = Image.new("RGB", (5, 3))
rgb.putdata([(x * 50, y * 80, (x + y) * 30) for y in range(3) for x in range(5)])
write("image", "valid.png", encoded(rgb, "PNG"))
write("image", "valid_grey_alpha.png", encoded(rgb.convert("LA"), "PNG"))
write("image", "valid.jpg", encoded(rgb, "JPEG", quality=80))
write("image", "valid_progressive.jpg", encoded(rgb, "JPEG", progressive=True))
write("image", "valid.bmp", encoded(rgb, "BMP"))
write("image", "valid.gif", encoded(rgb.convert("P"), "GIF"))
png = encoded(rgb, "PNG")
write("image", "truncated.png", png[: len(png) // 2])


def png_header(width, height):
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


write("image", "huge_60000.png", png_header(60000, 60000))
write("image", "zero_width.png", png_header(0, 4))
jpg = encoded(rgb, "JPEG")
write("image", "truncated.jpg", jpg[: len(jpg) * 2 // 3])
write("image", "not_an_image.pgm", b"P5\n2 2\n65535\n" + bytes(8))
