#!/usr/bin/env python3
"""PyTorch (CUDA) peer for NativeTensor's Linalg.MatMul and Linalg.Syrk (Float32).

Times, on one GPU and the same shapes as NativeTensor's perf:

  matmul  torch.matmul(a, b, out=c)   a float32 [m, k], b float32 [k, n]
  syrk    torch.matmul(x.T, x, out=c) x float32 [rows, d] (cuBLAS has no out-of-place syrk behind torch.matmul:
          this is the GEMM a PyTorch user runs for X^T X, computing both triangles)

TF32 is switched off (torch.backends.cuda.matmul.allow_tf32 = False, float32 matmul precision "highest") so the
products are true Float32, as NativeTensor's are. Each rep is timed between two CUDA events on the current stream,
after --warmup untimed reps. Prints one JSON object on stdout, the shape matmul_numpy.py prints:
version, device, rows [{op, m, k, n, median_s, min_s, max_s, reps}]. --device cpu smoke-tests it without a GPU.
"""
import argparse
import json
import sys

import torch

from torch_timing import timed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matmul", action="append", default=[], help="m,k,n (repeatable)")
    p.add_argument("--syrk", action="append", default=[], help="rows,d (repeatable)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--device", default="cuda:0")
    return p.parse_args()


def main():
    args = parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    generator = torch.Generator(device=device).manual_seed(1)
    rows = []
    for shape in args.matmul:
        m, k, n = (int(x) for x in shape.split(","))
        a = torch.rand(m, k, device=device, generator=generator) * 2 - 1
        b = torch.rand(k, n, device=device, generator=generator) * 2 - 1
        c = torch.empty(m, n, device=device)
        rows.append({"op": "matmul", "m": m, "k": k, "n": n, **timed(device, lambda: torch.matmul(a, b, out=c), args.warmup, args.reps)})
    for shape in args.syrk:
        count, d = (int(x) for x in shape.split(","))
        x = torch.rand(count, d, device=device, generator=generator) * 2 - 1
        c = torch.empty(d, d, device=device)
        rows.append({"op": "syrk", "m": count, "k": d, "n": d, **timed(device, lambda: torch.matmul(x.T, x, out=c), args.warmup, args.reps)})
    json.dump({"peer": "torch", "version": torch.__version__, "device": str(device), "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
