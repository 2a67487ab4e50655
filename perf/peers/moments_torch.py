#!/usr/bin/env python3
"""PyTorch (CUDA) peer for NativeTensor's Moments.Update: the covariance of one [n, d] float32 batch on a GPU.

Variants, all on the same batch (--batch: little-endian float32, n x d, written by perf, which times the same rows),
each on a tensor already on the device:

  torch.cov f32   torch.cov(x.T): float32 centring and matmul (TF32 stays off unless the user enables it)
  torch.cov f64   torch.cov(x.T.double()): the conversion and a float64 matmul, for the accuracy it buys

Each rep is timed between two CUDA events after --warmup untimed reps. GFLOP/s counts n d (d + 1), as perf does for
Moments.Update. Each variant's max-norm relative error against a float64 CPU np.cov-equivalent (torch.cov in float64 on
the CPU) is reported. Prints one JSON object on stdout. --device cpu smoke-tests the script without a GPU.
"""
import argparse
import json

import torch

from torch_timing import timed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--device", default="cuda:0")
    return p.parse_args()


def main():
    args = parse_args()
    device = torch.device(args.device)
    with open(args.batch, "rb") as f:
        host = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(args.rows, args.features)
    reference = torch.cov(host.T.double())
    x = host.to(device)
    variants = {"torch.cov f32": lambda: torch.cov(x.T), "torch.cov f64": lambda: torch.cov(x.T.double())}
    flops = args.rows * args.features * (args.features + 1)
    rows = []
    for name, body in variants.items():
        row = timed(device, body, args.warmup, args.reps)
        error = float((body().double().cpu() - reference).abs().max() / reference.abs().max())
        rows.append({"op": name, **row, "gflops": flops / row["median_s"] / 1e9, "max_rel_error": error})
    print(json.dumps({"peer": "torch", "version": torch.__version__, "device": str(device), "rows": rows}))


if __name__ == "__main__":
    main()
