#!/usr/bin/env python3
"""NumPy peer for NativeTensor's Moments.Update: the covariance of one [n, d] float32 batch.

Variants, all on the same batch (--batch: little-endian float32, n x d, written by perf, which times the same rows):

  np.cov        np.cov(x, rowvar=False): NumPy widens to float64, centres, and multiplies (BLAS dgemm)
  float32 gemm  xc = x - x.mean(axis=0); xc.T @ xc / (n - 1), all in float32 (BLAS sgemm): a float32 pipeline

Each rep is timed with time.perf_counter_ns after --warmup untimed reps. GFLOP/s counts n d (d + 1) (the multiply-adds
of one triangle of X^T X, twice), the same count perf uses for Moments.Update. Each variant's max-norm relative error
against np.cov's float64 result is reported beside its time. Prints one JSON object on stdout.
"""
import argparse
import json
import platform
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", required=True, help="n x d little-endian float32 values")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=7)
    return p.parse_args()


def blas_name():
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # NumPy < 1.25 has no dict mode; its build info names the libraries
        try:
            return ",".join(dict.fromkeys(np.__config__.blas_opt_info.get("libraries", []))) or "unknown"
        except Exception:
            return "unknown"


def float32_gemm(x):
    xc = x - x.mean(axis=0, dtype=np.float32)
    return (xc.T @ xc) / np.float32(x.shape[0] - 1)


def main():
    args = parse_args()
    x = np.fromfile(args.batch, dtype="<f4").reshape(args.rows, args.features)
    variants = {"np.cov (float64)": lambda: np.cov(x, rowvar=False), "float32 gemm": lambda: float32_gemm(x)}
    reference = np.cov(x, rowvar=False)
    flops = args.rows * args.features * (args.features + 1)
    rows = []
    for name, body in variants.items():
        for _ in range(args.warmup):
            result = body()
        seconds = []
        for _ in range(args.reps):
            began = time.perf_counter_ns()
            result = body()
            seconds.append((time.perf_counter_ns() - began) * 1e-9)
        error = float(np.max(np.abs(result.astype(np.float64) - reference)) / np.max(np.abs(reference)))
        median = float(np.median(seconds))
        rows.append({"op": name, "median_s": median, "min_s": min(seconds), "max_s": max(seconds), "reps": args.reps,
                     "gflops": flops / median / 1e9, "max_rel_error": error})
    print(json.dumps({"peer": "numpy", "version": np.__version__, "blas": blas_name(), "python": platform.python_version(),
                      "rows": rows}))


if __name__ == "__main__":
    main()
