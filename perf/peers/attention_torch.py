#!/usr/bin/env python3
"""PyTorch peer for NativeTensor's Attention.Forward and Backward, on the CPU or a CUDA GPU.

What a PyTorch user writes: torch.nn.functional.scaled_dot_product_attention where this torch has it (2.0 and later;
on CUDA with BFloat16/Float16 the FlashAttention-2 backend is required, so a refusal says so instead of timing a slower
kernel), else the naive softmax(q k^T * scale + mask) v (Debian's torch 1.13 on the CPU). Masks: causal is
is_causal=True when n == m (top-left and bottom-right alignment agree there), else an explicit bottom-right mask;
sliding windows need an explicit mask in PyTorch (quadratic in memory and time, PyTorch issue #119653).
Backward: the gradients of q, k, v from a random output gradient (autograd), timed without the forward.

Each --case is b,h,n,m,d,causal,window,dtype (dtype float32|bfloat16|float16). Prints one JSON object: version,
device, rows [{op, case, backend, median_s, min_s, max_s, reps}], refused {case: why}.
"""
import argparse
import json
import math

import torch

from torch_timing import timed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", default=[], help="b,h,n,m,d,causal,window,dtype (repeatable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=10)
    return p.parse_args()


def bottom_right_mask(n, m, causal, window, device):
    """Boolean [n, m], True where key j is visible to query i (query i at position m - n + i)."""
    p = (m - n + torch.arange(n, device=device))[:, None]
    j = torch.arange(m, device=device)[None, :]
    visible = torch.ones((n, m), dtype=torch.bool, device=device)
    if causal:
        visible &= j <= p
    if window > 0:
        visible &= j > p - window
    return visible


def main():
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(1)
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    rows, refused = [], {}
    for text in args.case:
        fields = text.split(",")
        b, h, n, m, d, causal, window = (int(x) for x in fields[:7])
        dtype = getattr(torch, fields[7])
        q = torch.rand((b, h, n, d), device=device, dtype=dtype, requires_grad=True)
        k = torch.rand((b, h, m, d), device=device, dtype=dtype, requires_grad=True)
        v = torch.rand((b, h, m, d), device=device, dtype=dtype, requires_grad=True)
        grad = torch.rand((b, h, n, d), device=device, dtype=dtype)
        scale = 1 / math.sqrt(d)
        mask = None if (window == 0 and (not causal or n == m)) else bottom_right_mask(n, m, bool(causal), window, device)
        is_causal = bool(causal) and mask is None
        if sdpa is not None:
            backend = "sdpa"
            context = None
            if device.type == "cuda" and dtype != torch.float32:
                try:
                    from torch.nn.attention import SDPBackend, sdpa_kernel
                    context = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)
                    backend = "sdpa flash"
                except ImportError:
                    context = lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)
                    backend = "sdpa flash"

            def forward():
                if context is None:
                    return sdpa(q, k, v, attn_mask=mask, is_causal=is_causal)
                with context():
                    return sdpa(q, k, v, attn_mask=mask, is_causal=is_causal)
        else:
            backend = "naive softmax(q k^T) v"

            def forward():
                s = (q @ k.transpose(-1, -2)) * scale
                if mask is not None or causal:
                    visible = mask if mask is not None else bottom_right_mask(n, m, True, 0, device)
                    s = s.masked_fill(~visible, float("-inf"))
                return torch.softmax(s, dim=-1) @ v
        try:
            with torch.no_grad():
                forward()
        except RuntimeError as e:
            refused[text] = str(e).splitlines()[0]
            continue
        with torch.no_grad():
            rows.append({"op": "forward", "case": text, "backend": backend, **timed(device, forward, args.warmup, args.reps)})
        out = forward()

        def backward():
            torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)

        rows.append({"op": "backward", "case": text, "backend": backend, **timed(device, backward, args.warmup, args.reps)})
    print(json.dumps({"peer": "torch", "version": torch.__version__, "device": str(device), "rows": rows, "refused": refused}))


if __name__ == "__main__":
    main()
