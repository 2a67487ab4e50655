#!/usr/bin/env python3
"""NumPy peer for NativeTensor's Attention.Forward (Float32, CPU): the naive attention a NumPy user writes.

  s = (q @ k.swapaxes(-1, -2)) * scale      [B, H, N, M] scores, materialised (matmul through the BLAS NumPy links)
  s[mask] = -inf                            causal (bottom-right aligned) and sliding-window masks
  p = exp(s - s.max(-1)); p /= p.sum(-1)    softmax over keys
  o = p @ v

Each --case is b,h,n,m,d,causal,window. Each rep is timed with time.perf_counter_ns after --warmup untimed reps. Prints
one JSON object: version, blas, rows [{op, case, median_s, min_s, max_s, reps, score_bytes}] (score_bytes: the [B, H, N, M]
matrix it materialises).
"""
import argparse
import json
import statistics
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", default=[], help="b,h,n,m,d,causal,window (repeatable)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=10)
    return p.parse_args()


def timed(body, warmup, reps):
    for _ in range(warmup):
        body()
    seconds = []
    for _ in range(reps):
        began = time.perf_counter_ns()
        body()
        seconds.append((time.perf_counter_ns() - began) * 1e-9)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "reps": reps}


def hidden(n, m, causal, window):
    """True where key j is hidden from query i (query i at position m - n + i)."""
    p = (m - n + np.arange(n))[:, None]
    j = np.arange(m)[None, :]
    mask = np.zeros((n, m), dtype=bool)
    if causal:
        mask |= j > p
    if window > 0:
        mask |= j <= p - window
    return mask


def main():
    args = parse_args()
    rng = np.random.default_rng(1)
    rows = []
    for text in args.case:
        b, h, n, m, d, causal, window = (int(x) for x in text.split(","))
        q = (rng.random((b, h, n, d), dtype=np.float32) * 2 - 1)
        k = (rng.random((b, h, m, d), dtype=np.float32) * 2 - 1)
        v = (rng.random((b, h, m, d), dtype=np.float32) * 2 - 1)
        scale = np.float32(1 / np.sqrt(d))
        mask = hidden(n, m, bool(causal), window)

        def forward():
            s = (q @ k.swapaxes(-1, -2)) * scale
            s[..., mask] = -np.inf
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            return s @ v

        rows.append({"op": "forward", "case": text, "score_bytes": 4 * b * h * n * m, **timed(forward, args.warmup, args.reps)})
    blas = []
    try:
        with open("/proc/self/maps") as maps:
            blas = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line})
    except OSError:
        pass
    print(json.dumps({"peer": "numpy", "version": np.__version__, "blas": blas, "rows": rows}))


if __name__ == "__main__":
    main()
