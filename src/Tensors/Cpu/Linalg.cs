using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU matrix products: <c>C = alpha * op(A) * op(B) + beta * C</c> and the symmetric <c>A^T A</c>, as a blocked GEMM
/// in the BLIS/GotoBLAS layout (Goto and van de Geijn, "Anatomy of High-Performance Matrix Multiplication", 2008),
/// rotated for row-major C so that the vectors run along C's rows:
/// <code>
/// for jc in n by NC                      a block of C's columns
///   for pc in k by KC                    a depth block
///     pack op(B)[pc.., jc..]             KC x NC, in NR-wide micro-panels, shared by all cores (stays in each L2),
///                                        16 depth rows per work item, read along B's rows
///     for each MR-row panel of C         claimed by the cores one at a time
///       pack op(A)[i.., pc..]            MR x KC, private to the core (stays in L1)
///       for jr in NC by NR               micro-kernel: an MR x NR tile of C in registers for KC steps
/// </code>
/// Packing widens Float16/BFloat16 exactly and does the transposes, so one micro-kernel per vector width serves every
/// dtype and transpose pair. Each element of C is a sum over k in a fixed order (p ascending inside each KC block,
/// the blocks merged into C in order), so the result does not depend on how the cores share the work.
/// </summary>
/// <remarks>
/// Alpha and beta are applied at write-back: the first depth block writes <c>fma(alpha, t, beta * c)</c> (or
/// <c>alpha * t</c> without reading C when beta is 0), each later block <c>fma(alpha, t, c)</c>. A product term thus
/// meets at most KC roundings in its block and one per later merge, and beta * c one plus one per merge: at most
/// k + 2 in all, the count the tests' error bound (Higham §3.1) is derived from.
/// </remarks>
internal static unsafe class LinalgKernels
{
    /// <summary>Below this many multiply-adds one core works alone: handing work to a second costs tens of microseconds.</summary>
    private const long ParallelThreshold = 1L << 21;

    public static void MatMul(byte* a, DType aType, bool transposeA, byte* b, DType bType, bool transposeB, float* c,
        int m, int n, int k, float alpha, float beta, SimdWidth width)
    {
        // op(A) by rows: stored [m, k] a row runs along k; stored [k, m] (transposed) the rows lie side by side.
        var left = transposeA ? new Operand(a, aType, m, 1, m) : new Operand(a, aType, m, k, 1);
        // op(B) by columns: stored [k, n] the columns lie side by side; stored [n, k] (transposed) a column runs along k.
        var right = transposeB ? new Operand(b, bType, n, k, 1) : new Operand(b, bType, n, 1, n);
        Run(new Product(left, right, c, m, n, k, alpha, beta, lower: false), width);
    }

    /// <summary>
    /// <c>C = alpha * A^T A + beta * C</c>: the GEMM computes only the tiles that touch the lower triangle (about half
    /// the work), reading beta's C there, and the upper triangle is then copied from the lower, so the two are
    /// bit-identical mirror images.
    /// </summary>
    public static void Syrk(byte* a, DType aType, int rows, int columns, float* c, float alpha, float beta, SimdWidth width)
    {
        // op(A) = A^T by rows and op(B) = A by columns are both the columns of A, which lie side by side in memory.
        var x = new Operand(a, aType, columns, 1, columns);
        var product = new Product(x, x, c, columns, columns, rows, alpha, beta, lower: true);
        Run(product, width);
        product.MirrorLower(width);
    }

    private static void Run(Product product, SimdWidth width)
    {
        switch (width)
        {
            case SimdWidth.V512: new Gemm<MicroKernel512>(product).Run(); break;
            case SimdWidth.V256: new Gemm<MicroKernel256>(product).Run(); break;
            case SimdWidth.V128: new Gemm<MicroKernel128>(product).Run(); break;
            default: new Gemm<MicroKernelScalar>(product).Run(); break;
        }
    }

    /// <summary>The operands and the output of one product, already validated: m, n, k &gt;= 1, C [m, n] row-major.</summary>
    private readonly struct Product(Operand a, Operand b, float* c, int m, int n, int k, float alpha, float beta, bool lower)
    {
        public readonly Operand A = a, B = b;
        public readonly float* C = c;
        public readonly int M = m, N = n, K = k;
        public readonly float Alpha = alpha, Beta = beta;
        /// <summary>Only the tiles that hold an element on or below the diagonal (Syrk).</summary>
        public readonly bool Lower = lower;

        public int Workers(int panels) =>
            (long)M * N * K < ParallelThreshold ? 1 : Math.Min(Environment.ProcessorCount, panels);

        /// <summary>
        /// C[i, j] = C[j, i] for every j &gt; i, by 16 x 16 blocks: with AVX-512 each block strictly below the diagonal is
        /// transposed in registers into its mirror; diagonal and ragged blocks go element by element.
        /// </summary>
        public void MirrorLower(SimdWidth width)
        {
            const int block = 16;
            int n = N, blocks = (n + block - 1) / block;
            float* c = C;
            bool vectors = width == SimdWidth.V512 && Avx512F.IsSupported;
            Shared.For(Workers(blocks), blocks, (_, bi) =>
            {
                // Block row bi of the upper triangle: rows [i0, i1), columns from i0 on.
                int i0 = bi * block, i1 = Math.Min(n, i0 + block);
                for (int j0 = i0; j0 < n; j0 += block)
                {
                    int j1 = Math.Min(n, j0 + block);
                    if (vectors && j0 > i0 && i1 - i0 == block && j1 - j0 == block)
                        LinalgPacking.Transpose16(c + (long)j0 * n + i0, n, c + (long)i0 * n + j0, n);
                    else
                        for (int i = i0; i < i1; i++)
                            for (int j = Math.Max(j0, i + 1); j < j1; j++)
                                c[(long)i * n + j] = c[(long)j * n + i];
                }
            });
        }
    }

    /// <summary>
    /// The loop nest of one product for one micro-kernel, run by all workers in one parallel region. The work is one
    /// numbered sequence of items, claimed in order by whichever worker is free: for each block step (jc, pc), the
    /// depth chunks of the B block to pack, then the row panels to multiply. An item waits only for items numbered
    /// before it, so no claim order can deadlock, one worker alone runs everything, and the waits are short: a
    /// worker done with its last row panel packs the next B block (the two alternate between two buffers) while the
    /// other finishes, where a barrier per step would leave it idle.
    /// </summary>
    private sealed class Gemm<TKernel> where TKernel : IMicroKernel
    {
        private static readonly int MR = TKernel.Rows, NR = TKernel.Columns, KC = TKernel.Depth, NC = TKernel.Width;
        /// <summary>Depth steps of the B block per packing item: the copy reads 16 rows of B at a time, row by row.</summary>
        private const int DepthChunk = 16;
        private readonly Product p;
        private readonly int _aFloats, _bFloats, _rowPanels, _depthSteps, _steps;
        /// <summary>The number of the first item of each step; and per step, the packing and row-panel items finished.</summary>
        private readonly int[] _firstItem, _packed, _computed;
        private float* _packedB, _scratch;
        private int _next = -1;
        private volatile bool _failed;   // set by a worker whose item threw, so the others stop waiting on it

        public Gemm(Product product)
        {
            p = product;
            _aFloats = Math.Min(KC, p.K) * MR + LinalgPacking.Slack;
            _bFloats = Math.Min(KC, p.K) * ((Math.Min(NC, p.N) + NR - 1) / NR * NR) + LinalgPacking.Slack;
            _rowPanels = (p.M + MR - 1) / MR;
            _depthSteps = (p.K + KC - 1) / KC;
            _steps = _depthSteps * ((p.N + NC - 1) / NC);
            _firstItem = new int[_steps + 1];
            for (int s = 0; s < _steps; s++) _firstItem[s + 1] = _firstItem[s] + PackItems(s) + PanelItems(s);
            _packed = new int[_steps];
            _computed = new int[_steps];
        }

        // Step s covers columns [Jc, Jc + NC) of C and depth [Pc, Pc + Kc): depth blocks inside column blocks.
        private int Jc(int step) => step / _depthSteps * NC;
        private int Pc(int step) => step % _depthSteps * KC;
        private int Kc(int step) => Math.Min(KC, p.K - Pc(step));
        private int PackItems(int step) => (Kc(step) + DepthChunk - 1) / DepthChunk;
        /// <summary>Syrk: row panels that end above the step's column block hold no element on or below the diagonal.</summary>
        private int FirstPanel(int step) => p.Lower ? Jc(step) / MR : 0;
        private int PanelItems(int step) => _rowPanels - FirstPanel(step);
        private float* PackedB(int step) => _packedB + (long)(step & 1) * _bFloats;

        public void Run()
        {
            int workers = p.Workers(_rowPanels);
            _packedB = Allocate(2L * _bFloats);
            try
            {
                _scratch = Allocate((long)workers * (_aFloats + MR * NR));
                if (workers == 1) Work(0);
                else Parallel.For(0, workers, Work);
            }
            finally
            {
                NativeMemory.AlignedFree(_packedB);
                NativeMemory.AlignedFree(_scratch);
                _packedB = _scratch = null;
            }
        }

        /// <summary>
        /// One worker: claims items in order until none is left. An item that throws marks the region failed, so workers
        /// waiting on its count stop (<see cref="WaitFor"/>) instead of spinning forever; Parallel.For then rethrows.
        /// </summary>
        private void Work(int worker)
        {
            try
            {
                Items(worker);
            }
            catch
            {
                _failed = true;
                throw;
            }
        }

        private void Items(int worker)
        {
            int total = _firstItem[_steps], step = 0;
            for (int item; (item = Interlocked.Increment(ref _next)) < total;)
            {
                while (item >= _firstItem[step + 1]) step++;
                int index = item - _firstItem[step];
                if (index < PackItems(step))
                {
                    // The buffer this step packs into was last read by the step two before.
                    if (step >= 2) WaitFor(ref _computed[step - 2], PanelItems(step - 2));
                    PackB(step, index);
                    Interlocked.Increment(ref _packed[step]);
                }
                else
                {
                    // The whole B block, and the previous step's merge into the same rows of C (the order of the sum).
                    WaitFor(ref _packed[step], PackItems(step));
                    if (step >= 1) WaitFor(ref _computed[step - 1], PanelItems(step - 1));
                    RowPanel(worker, step, FirstPanel(step) + index - PackItems(step));
                    Interlocked.Increment(ref _computed[step]);
                }
            }
        }

        /// <summary>
        /// Spins (yielding, never sleeping a whole millisecond) until <paramref name="count"/> items are done; gives up with
        /// an exception once another worker has failed (its exception is the one Parallel.For reports first).
        /// </summary>
        private void WaitFor(ref int done, int count)
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref done) < count)
            {
                if (_failed) throw new OperationCanceledException("another GEMM worker failed");
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        /// <summary>Depth rows [16 c, 16 c + 16) of the step's B block, into every NR-wide micro-panel.</summary>
        private void PackB(int step, int chunk)
        {
            int jc = Jc(step), nc = Math.Min(NC, p.N - jc), kc = Kc(step), q = chunk * DepthChunk, depth = Math.Min(DepthChunk, kc - q);
            float* packed = PackedB(step);
            for (int j = 0; j < nc; j += NR)
                LinalgPacking.Panel(p.B, jc + j, Math.Min(NR, nc - j), Pc(step) + q, depth, packed + (long)j * kc + q * NR, NR, TKernel.Simd);
        }

        /// <summary>Rows [i, i + MR) of C across the column block: pack the A micro-panel once, then one tile per B micro-panel.</summary>
        private void RowPanel(int worker, int step, int panel)
        {
            float* a = _scratch + worker * (long)(_aFloats + MR * NR), tile = a + _aFloats, packed = PackedB(step);
            int jc = Jc(step), nc = Math.Min(NC, p.N - jc), pc = Pc(step), kc = Kc(step);
            int i = panel * MR, rows = Math.Min(MR, p.M - i);
            LinalgPacking.Panel(p.A, i, rows, pc, kc, a, MR, TKernel.Simd);
            int end = p.Lower ? Math.Min(nc, i + rows - jc) : nc;
            float beta = pc == 0 ? p.Beta : 1;
            float* c = p.C + (long)i * p.N + jc;
            for (int j = 0; j < end; j += NR)
            {
                TKernel.Multiply(a, packed + (long)j * kc, kc, tile);
                TKernel.WriteBack(tile, c + j, p.N, rows, Math.Min(NR, nc - j), p.Alpha, beta);
            }
        }

        private static float* Allocate(long floats) => (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
    }

    /// <summary>Work items [0, count) handed out one at a time to <c>workers</c> threads, the caller's among them.</summary>
    private static class Shared
    {
        public static void For(int workers, int count, Action<int, int> body)
        {
            if (workers <= 1 || count <= 1)
            {
                for (int i = 0; i < count; i++) body(0, i);
                return;
            }
            int next = -1;
            Parallel.For(0, Math.Min(workers, count), worker =>
            {
                for (int i; (i = Interlocked.Increment(ref next)) < count;) body(worker, i);
            });
        }
    }
}
