"""Timing shared by the PyTorch peers: warm-up reps, then each rep between two CUDA events on the current stream
(time.perf_counter_ns on the CPU, for smoke tests without a GPU). Seconds per rep: median, min, max."""
import statistics
import time

import torch


def timed(device, body, warmup, reps):
    """Runs body() warmup times untimed, then reps times timed; returns {median_s, min_s, max_s, reps}."""
    for _ in range(warmup):
        body()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            body()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            began = time.perf_counter_ns()
            body()
            times.append((time.perf_counter_ns() - began) / 1e9)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "reps": reps}
