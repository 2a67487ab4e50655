#!/usr/bin/env python3
"""PyTorch (CUDA) peer for NativeTensor's Precision.UnscaleAndCheck and fused AdamW step.

Times, on one GPU, what a PyTorch mixed-precision loop runs per step over --elements parameters:

  unscale f32    torch._amp_foreach_non_finite_check_and_unscale_([g], found_inf, inv_scale), float32 g
  unscale bf16   the same with a bfloat16 g (PyTorch may refuse it; the refusal is reported, not hidden)
  adamw fused    torch.optim.AdamW([p], fused=True).step() with float32 p and p.grad
  adamw foreach  torch.optim.AdamW([p], foreach=True).step(), the multi-tensor path, for reference

Bytes counted per element (read + written), the same as NativeTensor's rows: unscale 2 x the gradient's size
(in place); AdamW 28 (reads p, grad, exp_avg, exp_avg_sq; writes p, exp_avg, exp_avg_sq). Each rep is timed
between two CUDA events on the current stream, after --warmup untimed reps. Prints one JSON object on stdout.
--device cpu runs the same code timed with perf_counter_ns, to smoke-test the script without a GPU.
"""
import argparse
import json
import sys

import torch

from torch_timing import timed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elements", type=int, default=16 << 20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--device", default="cuda:0")
    return p.parse_args()


def main():
    args = parse_args()
    device = torch.device(args.device)
    n = args.elements
    rows, refused = [], {}
    found_inf = torch.zeros(1, device=device)
    for name, dtype in (("unscale f32", torch.float32), ("unscale bf16", torch.bfloat16)):
        g = (torch.rand(n, device=device) - 0.5).to(dtype)
        scales = [torch.full((1,), 2.0 ** -16, device=device), torch.full((1,), 2.0 ** 16, device=device)]
        flip = [0]

        def unscale():
            # Alternate 2^-16 and 2^16, as NativeTensor's row does, so values never drift to subnormals.
            torch._amp_foreach_non_finite_check_and_unscale_([g], found_inf, scales[flip[0]])
            flip[0] ^= 1
        try:
            row = timed(device, unscale, args.warmup, args.reps)
        except RuntimeError as e:
            refused[name] = str(e).splitlines()[0]
            continue
        rows.append({"op": name, "bytes_per_element": 2 * g.element_size(), **row})
    for name, flags in (("adamw fused", {"fused": True}), ("adamw foreach", {"foreach": True})):
        p = torch.nn.Parameter((torch.rand(n, device=device) - 0.5))
        p.grad = (torch.rand(n, device=device) - 0.5) * 1e-3
        try:
            optimizer = torch.optim.AdamW([p], lr=1e-3, **flags)
            row = timed(device, optimizer.step, args.warmup, args.reps)
        except (RuntimeError, TypeError) as e:
            refused[name] = str(e).splitlines()[0]
            continue
        rows.append({"op": name, "bytes_per_element": 28, **row})
    json.dump({"version": torch.__version__, "device": str(device), "elements": n, "rows": rows, "refused": refused}, sys.stdout)


if __name__ == "__main__":
    main()
