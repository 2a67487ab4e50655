#!/usr/bin/env python3
"""NumPy peer for NativeTensor's Linalg.MatMul and Linalg.Syrk (Float32, CPU).

Times, on the same shapes as NativeTensor's perf, what a NumPy user writes:

  matmul  a @ b      a float32 [m, k], b float32 [k, n] (C-contiguous): one sgemm call in the BLAS NumPy links
  syrk    x.T @ x    x float32 [rows, d]: NumPy sees one operand and its transpose and calls ssyrk, then mirrors

Each rep is timed with time.perf_counter_ns after --warmup untimed reps; the output is a fresh array each time,
as a NumPy user gets it. Which BLAS actually ran is read from /proc/self/maps after the first product (Debian
switches libblas.so.3 between the reference BLAS and OpenBLAS with update-alternatives), and reported.
Prints one JSON object on stdout: version, blas, threads, rows [{op, m, k, n, median_s, min_s, max_s, reps}].
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matmul", action="append", default=[], help="m,k,n (repeatable)")
    p.add_argument("--syrk", action="append", default=[], help="rows,d (repeatable)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def loaded_blas():
    """Shared objects mapped into this process whose names say BLAS, e.g. .../openblas-pthread/libblas.so.3."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line}
        return sorted(paths)
    except OSError:
        return []


def timed(body, warmup, reps):
    for _ in range(warmup):
        body()
    seconds = []
    for _ in range(reps):
        began = time.perf_counter_ns()
        body()
        seconds.append((time.perf_counter_ns() - began) * 1e-9)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "reps": reps}


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for shape in args.matmul:
        m, k, n = (int(x) for x in shape.split(","))
        a = rng.random((m, k), dtype=np.float32) * 2 - 1
        b = rng.random((k, n), dtype=np.float32) * 2 - 1
        rows.append({"op": "matmul", "m": m, "k": k, "n": n, **timed(lambda: a @ b, args.warmup, args.reps)})
    for shape in args.syrk:
        count, d = (int(x) for x in shape.split(","))
        x = rng.random((count, d), dtype=np.float32) * 2 - 1
        rows.append({"op": "syrk", "m": count, "k": d, "n": d, **timed(lambda: x.T @ x, args.warmup, args.reps)})
    print(json.dumps({
        "peer": "numpy",
        "version": np.__version__,
        "python": platform.python_version(),
        "blas": loaded_blas(),
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default (all cores)"),
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
