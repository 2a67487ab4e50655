// Leak tests read per-backend live-buffer counters and kernels already use every core, so test classes
// run one at a time: a counter then sees only its own test's allocations.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
