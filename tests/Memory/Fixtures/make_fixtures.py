#!/usr/bin/env python3
"""Writes the small .npy and .safetensors fixtures of tests/Memory (run: python3 make_fixtures.py in this folder).

Values come from formulas the C# tests recompute (MappedFixtures.cs), element by flat C-order index i:
  float32 / bfloat16: i * 0.25 - 3      float16: i * 0.5 - 2
  int32: i * 7 - 20                     int64: i * 3_000_000_000 - 7
bfloat16 is the top 16 bits of the float32 value (exact for these values), stored as uint16 (NumPy has no bfloat16).
The .npy files come from NumPy itself (np.save / np.lib.format.write_array); NumPy cannot write safetensors and
the safetensors package is not installed here, so safetensors.py below writes them by the format's spec.
"""
import json
import struct

import numpy as np
from numpy.lib import format as npformat


def values(kind, shape):
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.int64)
    if kind == "f4":
        a = (i * 0.25 - 3).astype("<f4")
    elif kind == "f2":
        a = (i * 0.5 - 2).astype("<f2")
    elif kind == "i4":
        a = (i * 7 - 20).astype("<i4")
    elif kind == "i8":
        a = (i * 3_000_000_000 - 7).astype("<i8")
    elif kind == "bf16":
        a = ((i * 0.25 - 3).astype("<f4").view("<u4") >> 16).astype("<u2")
    else:
        raise ValueError(kind)
    return a.reshape(shape)


def save(name, array, version=None, fortran=False):
    if fortran:
        array = np.asfortranarray(array)
    with open(name, "wb") as f:
        npformat.write_array(f, array, version=version)


for kind in ("f4", "f2", "i4", "i8", "bf16"):
    save(f"{kind}_v1.npy", values(kind, (2, 3)), version=(1, 0))
save("f4_v2.npy", values("f4", (3, 2)), version=(2, 0))
save("f4_v3.npy", values("f4", (2, 2, 2)), version=(3, 0))
save("i4_v3.npy", values("i4", (4,)), version=(3, 0))
save("f4_scalar.npy", values("f4", ()), version=(1, 0))
save("f2_scalar.npy", values("f2", ()), version=(2, 0))
save("i8_empty.npy", values("i8", (0,)), version=(1, 0))
save("f4_empty_rows.npy", values("f4", (2, 0)), version=(1, 0))
save("f4_fortran.npy", values("f4", (2, 3)), fortran=True)
save("f4_bigendian.npy", values("f4", (2, 3)).astype(">f4"))
save("f8_unsupported.npy", np.arange(3, dtype="<f8"))


def safetensors(name, tensors, metadata=None):
    """tensors: list of (name, dtype code, uint8-viewable array); written in list order, contiguous, header 8-aligned."""
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for tname, code, array in tensors:
        blob = np.ascontiguousarray(array).tobytes()
        header[tname] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(name, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


safetensors("all_dtypes.safetensors", [
    ("weight.f32", "F32", values("f4", (2, 3))),
    ("half", "F16", values("f2", (3,))),
    ("brain", "BF16", values("bf16", (2, 2))),
    ("empty", "F32", values("f4", (0, 3))),
    ("ids", "I32", values("i4", (4,))),
    ("big", "I64", values("i8", (2,))),
    ("scalar", "F32", values("f4", ())),
], metadata={"format": "pt", "source": "make_fixtures.py"})
safetensors("no_metadata.safetensors", [("x", "F32", values("f4", (3,)))])
safetensors("only_metadata.safetensors", [], metadata={"note": "no tensors"})
safetensors("f64_unsupported.safetensors", [("x", "F64", np.arange(2, dtype="<f8"))])
