#!/usr/bin/env python3
"""NumPy peer for NativeTensor's Windows.Gather: out[b, t, ...] = frames[starts[b] + t, ...].

Gathers batches of windows the way a NumPy user would, by building the [B, W] frame index
idx = starts[:, None] + np.arange(W) and indexing axis 0 with it. Variants, all on the same batches:

  take(raise)  np.take(frames, idx, axis=0, out=out)               preallocated output, bounds-checked
  take(clip)   np.take(frames, idx, axis=0, out=out, mode="clip")  preallocated output; NumPy buffers `out`
               for mode="raise" but not here (every start is valid, so the result is the same)
  fancy        frames[idx]                                          plain fancy indexing: a new array per batch

The fastest variant is reported as "method". Each timed rep covers building idx from the starts and the
gather, measured with time.perf_counter_ns. Bytes counted: read + written, 2 * B * W * row bytes.

The starts come from --starts, a file of little-endian int64 with (warmup + reps) sets of --batch starts,
warm-up sets first: NativeTensor's perf writes the sets it timed itself, so both gather the same windows.
Without --starts, sets are drawn here from a seeded shuffle. Prints one JSON object on stdout.
"""
import argparse
import json
import platform
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", required=True, help="frame tensor shape, e.g. 380000,287 or 33554432")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "int32", "int64"])
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--starts", help="int64 start sets written by perf; default: draw them here")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def make_frames(shape, dtype, rng):
    """Frames with every page written (values do not matter to a gather)."""
    count = int(np.prod(shape))
    if np.dtype(dtype).kind == "f":
        return rng.random(count, dtype=np.float32).astype(dtype, copy=False).reshape(shape)
    return rng.integers(0, 50_257, size=count, dtype=dtype).reshape(shape)


def load_starts(args, window_count):
    sets = args.warmup + args.reps
    if args.starts:
        starts = np.fromfile(args.starts, dtype="<i8")
        if starts.size != sets * args.batch:
            sys.exit(f"{args.starts} holds {starts.size} starts; expected {sets} sets of {args.batch}")
        return starts.reshape(sets, args.batch)
    rng = np.random.default_rng(args.seed + 1)
    return rng.permutation(window_count)[: sets * args.batch].reshape(sets, args.batch)


def variants(frames, window, out):
    steps = np.arange(window, dtype=np.int64)

    def take_raise(starts):
        return np.take(frames, starts[:, None] + steps, axis=0, out=out)

    def take_clip(starts):
        return np.take(frames, starts[:, None] + steps, axis=0, out=out, mode="clip")

    def fancy(starts):
        return frames[starts[:, None] + steps]

    return {"take(raise)": take_raise, "take(clip)": take_clip, "fancy": fancy}


def measure(gather, sets, warmup, reps):
    for k in range(warmup):
        gather(sets[k])
    seconds = []
    for r in range(reps):
        starts = sets[warmup + r]
        began = time.perf_counter_ns()
        gather(starts)
        seconds.append((time.perf_counter_ns() - began) * 1e-9)
    return seconds


def summary(seconds, moved):
    median = float(np.median(seconds))
    return {"median_s": median, "min_s": min(seconds), "max_s": max(seconds), "gbps": moved / median / 1e9}


def main():
    args = parse_args()
    shape = tuple(int(x) for x in args.shape.split(","))
    dtype = np.dtype(args.dtype)
    frames = make_frames(shape, dtype, np.random.default_rng(args.seed))
    sets = load_starts(args, shape[0] - args.window + 1)
    if sets.min() < 0 or sets.max() > shape[0] - args.window:
        sys.exit("a start's window runs outside the frames")

    out = np.empty((args.batch, args.window) + shape[1:], dtype=dtype)
    gathers = variants(frames, args.window, out)
    # The variants must agree before their times mean anything.
    first = [np.array(g(sets[0]), copy=True) for g in gathers.values()]
    if not all(np.array_equal(first[0], f) for f in first[1:]):
        sys.exit("the NumPy variants disagree")

    moved = 2 * out.nbytes
    results = {name: summary(measure(g, sets, args.warmup, args.reps), moved) for name, g in gathers.items()}
    best = min(results, key=lambda name: results[name]["median_s"])
    print(json.dumps({
        "peer": "numpy",
        "version": np.__version__,
        "python": platform.python_version(),
        "shape": list(shape), "dtype": args.dtype, "window": args.window, "batch": args.batch,
        "warmup": args.warmup, "reps": args.reps, "bytes_moved": moved,
        "method": best, **results[best],
        "variants": results,
    }))


if __name__ == "__main__":
    main()
