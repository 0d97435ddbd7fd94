"""Minimal safetensors writer and reader (F32 and BF16 only), written from the format description.

File layout: 8-byte little-endian header length N, then N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, padded with
spaces so that 8 + N is a multiple of 8, then the raw little-endian tensor bytes back to back
(offsets are relative to the start of that data buffer).
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2)}


def _tensor_bytes(t, dtype):
    """Little-endian raw bytes of t stored as dtype ("F32" or "BF16")."""
    t = t.detach().to("cpu").contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        # torch's float32 -> bfloat16 conversion rounds to nearest, ties to even.
        bits = t.to(torch.float32).to(torch.bfloat16).view(torch.int16)
        return bits.numpy().astype("<i2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def save_file(tensors, path, dtype="F32"):
    """Write a dict name -> torch tensor; every tensor is stored as dtype. Names are sorted."""
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        data = _tensor_bytes(t, dtype)
        header[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def load_file(path):
    """Read a file written by save_file (or any F32/BF16 safetensors file) -> dict of float32 tensors.

    Strict: the tensors must tile the data buffer exactly, in some order, with no gaps.
    """
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("header length past end of file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        _, size = _DTYPES[info["dtype"]]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end - begin != count * size or end > len(data) or begin < 0:
            raise ValueError(f"bad data_offsets for {name}")
        spans.append((begin, end))
        buf = data[begin:end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        else:
            bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise ValueError("tensors do not tile the data buffer")
        pos = end
    if pos != len(data):
        raise ValueError("trailing bytes after the last tensor")
    return out
