"""Read and write the safetensors format with nothing but torch (and numpy, which torchvision needs).

Used by make_fixtures.py and export_weights.py, so that the files visopt reads are written in one
place. The format: an 8-byte little-endian u64 header length, a JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}} padded with
spaces to a multiple of 8 bytes, then the tensors' raw little-endian bytes, back to back, in the
order of the header's offsets. Writes are atomic: a temporary file in the same folder, then a rename.
"""

import json
import os
import struct
import sys

import torch

# safetensors dtype names <-> torch dtypes (the ones visopt and its tools use).
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}

HEADER_ALIGNMENT = 8

if sys.byteorder != "little":
    raise RuntimeError("safetensors_io: this host is big-endian; the format stores little-endian bytes")


def _tensor_bytes(tensor):
    """The tensor's raw bytes in row-major order (bf16 has no numpy type, so go through a same-size int)."""
    tensor = tensor.detach().to("cpu").contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def build_header(tensors, metadata=None):
    """The padded JSON header for `tensors` (an ordered {name: tensor}) and `metadata` ({str: str})."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(key): str(value) for key, value in metadata.items()}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in DTYPE_NAMES:
            raise ValueError(f"safetensors_io: tensor '{name}' has dtype {tensor.dtype}, which the format writer does not handle")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % HEADER_ALIGNMENT)
    return text


def write_safetensors(path, tensors, metadata=None):
    """Write `tensors` ({name: tensor}, in that order) and `metadata` to `path`, atomically."""
    header = build_header(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(temporary, "wb") as out:
            out.write(struct.pack("<Q", len(header)))
            out.write(header)
            for tensor in tensors.values():
                out.write(_tensor_bytes(tensor))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_header(path):
    """The parsed JSON header of `path` and the byte offset where its data begins."""
    with open(path, "rb") as source:
        prefix = source.read(8)
        if len(prefix) != 8:
            raise ValueError(f"safetensors_io: '{path}' is shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        file_size = os.fstat(source.fileno()).st_size
        if length > file_size - 8:
            raise ValueError(f"safetensors_io: '{path}' declares a {length}-byte header but holds {file_size} bytes")
        header = json.loads(source.read(length).decode("utf-8"))
    return header, 8 + length


def read_metadata(path):
    """The "__metadata__" of `path` ({} when it has none); reads only the header."""
    header, _ = read_header(path)
    return header.get("__metadata__", {})


def read_safetensors(path):
    """All tensors of `path` as ({name: tensor} in file order, metadata)."""
    header, data_start = read_header(path)
    metadata = header.pop("__metadata__", {})
    with open(path, "rb") as source:
        source.seek(data_start)
        data = bytearray(source.read())
    tensors = {}
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        dtype_name = entry["dtype"]
        if dtype_name not in DTYPES_BY_NAME:
            raise ValueError(f"safetensors_io: tensor '{name}' in '{path}' has dtype {dtype_name}, which the reader does not handle")
        dtype = DTYPES_BY_NAME[dtype_name]
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        count = 1
        for extent in shape:
            count *= extent
        element_size = torch.tensor([], dtype=dtype).element_size()
        if end - begin != count * element_size or end > len(data):
            raise ValueError(f"safetensors_io: tensor '{name}' in '{path}' has offsets [{begin}, {end}], "
                             f"expected {count * element_size} bytes for {dtype_name} {shape} within {len(data)}")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        chunk = data[begin:end]
        if dtype == torch.bfloat16:
            flat = torch.frombuffer(chunk, dtype=torch.int16).view(torch.bfloat16)
        else:
            flat = torch.frombuffer(chunk, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    return tensors, metadata
