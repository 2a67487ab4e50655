#!/usr/bin/env python3
"""PyTorch (CUDA) peer for NativeTensor's Windows.Gather: out[b, t, ...] = frames[starts[b] + t, ...].

Gathers batches of windows on the GPU the way a PyTorch user would, with the starts already on the device.
Variants, all on the same batches:

  fancy         frames[starts[:, None] + torch.arange(W)]                       a new tensor per batch
  index_select  torch.index_select(frames, 0, (starts[:, None] + ar).view(-1), out=out)  preallocated output

The fastest variant is reported as "method". Each rep is timed between two CUDA events recorded on the
current stream around building the index and the gather. Bytes counted: read + written, 2 * B * W * row bytes.
--device cpu runs the same code on the CPU, timed with time.perf_counter_ns, to smoke-test this script on a
machine without a GPU; NativeTensor's perf only runs it against a CUDA device.

The starts come from --starts, a file of little-endian int64 with (warmup + reps) sets of --batch starts,
warm-up sets first, as NativeTensor's perf writes them. Without --starts, sets are drawn here from a
seeded permutation. Prints one JSON object on stdout.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "int32": torch.int32, "int64": torch.int64}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", required=True, help="frame tensor shape, e.g. 380000,287 or 33554432")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--starts", help="int64 start sets written by perf; default: draw them here")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cuda:0")
    return p.parse_args()


def make_frames(shape, dtype, device, generator):
    """Frames with every element written (values do not matter to a gather)."""
    if dtype.is_floating_point:
        return torch.rand(shape, generator=generator, device=device).to(dtype)
    return torch.randint(0, 50_257, shape, generator=generator, device=device, dtype=dtype)


def load_starts(args, window_count, device):
    sets = args.warmup + args.reps
    if args.starts:
        with open(args.starts, "rb") as f:
            starts = torch.frombuffer(bytearray(f.read()), dtype=torch.int64)
        if starts.numel() != sets * args.batch:
            sys.exit(f"{args.starts} holds {starts.numel()} starts; expected {sets} sets of {args.batch}")
    else:
        generator = torch.Generator().manual_seed(args.seed + 1)
        starts = torch.randperm(window_count, generator=generator)[: sets * args.batch]
    return starts.view(sets, args.batch).to(device)


def variants(frames, window, out):
    steps = torch.arange(window, device=frames.device, dtype=torch.int64)
    flat_out = out.view((-1,) + tuple(frames.shape[1:]))

    def fancy(starts):
        return frames[starts[:, None] + steps]

    def index_select(starts):
        torch.index_select(frames, 0, (starts[:, None] + steps).view(-1), out=flat_out)
        return out

    return {"fancy": fancy, "index_select": index_select}


def measure(gather, sets, warmup, reps, cuda):
    for k in range(warmup):
        gather(sets[k])
    if cuda:
        torch.cuda.synchronize()
    seconds = []
    for r in range(reps):
        starts = sets[warmup + r]
        if cuda:
            began = torch.cuda.Event(enable_timing=True)
            ended = torch.cuda.Event(enable_timing=True)
            began.record()
            gather(starts)
            ended.record()
            ended.synchronize()
            seconds.append(began.elapsed_time(ended) * 1e-3)
        else:
            began = time.perf_counter_ns()
            gather(starts)
            seconds.append((time.perf_counter_ns() - began) * 1e-9)
    return seconds


def summary(seconds, moved):
    median = statistics.median(seconds)
    return {"median_s": median, "min_s": min(seconds), "max_s": max(seconds), "gbps": moved / median / 1e9}


def main():
    args = parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    shape = tuple(int(x) for x in args.shape.split(","))
    dtype = DTYPES[args.dtype]
    generator = torch.Generator(device=device).manual_seed(args.seed)
    frames = make_frames(shape, dtype, device, generator)
    sets = load_starts(args, shape[0] - args.window + 1, device)
    if int(sets.min()) < 0 or int(sets.max()) > shape[0] - args.window:
        sys.exit("a start's window runs outside the frames")

    out = torch.empty((args.batch, args.window) + shape[1:], dtype=dtype, device=device)
    gathers = variants(frames, args.window, out)
    # The variants must agree before their times mean anything.
    first = [g(sets[0]).clone() for g in gathers.values()]
    if not all(torch.equal(first[0], f) for f in first[1:]):
        sys.exit("the PyTorch variants disagree")

    moved = 2 * out.numel() * out.element_size()
    results = {name: summary(measure(g, sets, args.warmup, args.reps, cuda), moved) for name, g in gathers.items()}
    best = min(results, key=lambda name: results[name]["median_s"])
    print(json.dumps({
        "peer": "torch",
        "version": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "shape": list(shape), "dtype": args.dtype, "window": args.window, "batch": args.batch,
        "warmup": args.warmup, "reps": args.reps, "bytes_moved": moved,
        "method": best, **results[best],
        "variants": results,
    }))


if __name__ == "__main__":
    main()
