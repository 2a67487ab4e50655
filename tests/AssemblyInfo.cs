// Leak tests read per-backend live-buffer counters and kernels already use every core, so tests run one at a time:
// a counter then sees only its own test's allocations.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]
