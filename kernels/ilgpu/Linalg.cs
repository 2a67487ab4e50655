using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/linalg.cl</c> in ILGPU C#: dense matrix products on one shared-memory tiled SGEMM core, matmul_&lt;a&gt;_&lt;b&gt;
/// (GEMM) and syrk_&lt;a&gt; (A^T A), with the .cl's tiles, staging and order of accumulation, so every element is the
/// same bits on every backend.
/// </summary>
/// <remarks>
/// Math: <c>C[i, j] = alpha * sum_p op(A)[i, p] * op(B)[p, j] (+ beta * C[i, j] when beta != 0)</c>; flags bit 0
/// transposes A (stored [k, m]), bit 1 B (stored [n, k]). Syrk: <c>C[i, j] = alpha * sum_p A[p, i] * A[p, j]</c>, only
/// the lower triangle computed and stored at [i, j] and [j, i], its beta term reading only the old lower triangle. Each
/// element is one chain of fused multiply-adds over p = 0, 1, ..., k - 1 from +0, then <c>s = alpha * sum</c>, then
/// <c>fma(beta, C, s)</c> only when beta != 0 (so a NaN in an unread C stays out). Tiling moves where operands come
/// from, never the order of a sum: matmul and syrk agree bit for bit.
/// Tiling: a group of exactly <see cref="Threads"/> = 256 threads owns one 64 x 64 tile of C. Per slice of 16 values of
/// p it stages op(A)[tile rows, slice] and op(B)[slice, tile columns] into shared memory, widened to float (exactly), with
/// the thread of each staged element chosen so a row of threads reads consecutive addresses whether or not the operand
/// is transposed, and rows <see cref="Pitch"/> = 65 floats apart so transposing stores fall in different banks; thread
/// (tx, ty) = (lid % 16, lid / 16) then accumulates rows ty + 16 i and columns tx + 16 j, i, j in [0, 4).
/// Launch: 1-D, one group per tile. matmul: group q takes tile row q / ceil(n / 64), column q % ceil(n / 64). syrk: group
/// q takes the q-th tile of the lower block triangle in row order (0,0), (1,0), (1,1), (2,0), ...
/// Bounds: a staged element is read only inside m (n, columns) and k (rows), +0 outside; a C element is read and written
/// only when i &lt; m and j &lt; n (syrk: j &lt;= i &lt; columns). Every thread reaches every barrier: bounds decide loads
/// and stores, never the trip count. Offsets are formed in 64 bits.
/// </remarks>
internal static class Linalg
{
    /// <summary>Rows and columns of C per group (NT_TILE).</summary>
    private const int Tile = 64;

    /// <summary>Values of p per staged slice (NT_SLICE).</summary>
    private const int Slice = 16;

    /// <summary>Threads per group, exactly (NT_THREADS): 16 x 16, each owning a 4 x 4 block of the tile.</summary>
    private const int Threads = 256;

    /// <summary>Floats between two p rows of a staged tile (NT_PITCH).</summary>
    private const int Pitch = Tile + 1;

    [Entry("matmul_f32_f32", typeof(uint), typeof(F32), typeof(uint), typeof(F32))]
    [Entry("matmul_f32_f16", typeof(uint), typeof(F32), typeof(ushort), typeof(F16))]
    [Entry("matmul_f32_bf16", typeof(uint), typeof(F32), typeof(ushort), typeof(BF16))]
    [Entry("matmul_f16_f32", typeof(ushort), typeof(F16), typeof(uint), typeof(F32))]
    [Entry("matmul_f16_f16", typeof(ushort), typeof(F16), typeof(ushort), typeof(F16))]
    [Entry("matmul_f16_bf16", typeof(ushort), typeof(F16), typeof(ushort), typeof(BF16))]
    [Entry("matmul_bf16_f32", typeof(ushort), typeof(BF16), typeof(uint), typeof(F32))]
    [Entry("matmul_bf16_f16", typeof(ushort), typeof(BF16), typeof(ushort), typeof(F16))]
    [Entry("matmul_bf16_bf16", typeof(ushort), typeof(BF16), typeof(ushort), typeof(BF16))]
    public static void MatMul<TA, TFormatA, TB, TFormatB>(
        ArrayView<TA> a, ArrayView<TB> b, ArrayView<float> c, int m, int n, int k, uint flags, uint alpha_bits, uint beta_bits)
        where TA : unmanaged where TFormatA : struct, IFloatFormat<TA>
        where TB : unmanaged where TFormatB : struct, IFloatFormat<TB>
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(Slice * Pitch);
        ArrayView<float> bTile = SharedMemory.Allocate<float>(Slice * Pitch);
        int lid = Group.IdxX, tx = lid % 16, ty = lid / 16;
        long tilesN = ((long)n + Tile - 1) / Tile;
        long row0 = Grid.IdxX / tilesN * Tile, col0 = Grid.IdxX % tilesN * Tile;
        // A [m, k] has p along memory, A^T stored [k, m] does not; B [k, n] does not, B^T stored [n, k] does.
        bool aAlong = (flags & 1u) == 0u, bAlong = (flags & 2u) != 0u;
        long lda = aAlong ? k : m, ldb = bAlong ? k : n;
        var acc = default(Block);
        for (long k0 = 0; k0 < k; k0 += Slice)
        {
            Stage<TA, TFormatA>(aTile, a, lda, aAlong, row0, m, k0, k, lid);
            Stage<TB, TFormatB>(bTile, b, ldb, bAlong, col0, n, k0, k, lid);
            Group.Barrier();
            acc.MultiplySlice(aTile, bTile, tx, ty);
            Group.Barrier();
        }
        float alpha = Dialect.AsFloat(alpha_bits), beta = Dialect.AsFloat(beta_bits);
        StoreProductRow(c, row0 + ty, col0 + tx, m, n, alpha, beta, acc.C00, acc.C01, acc.C02, acc.C03);
        StoreProductRow(c, row0 + ty + 16, col0 + tx, m, n, alpha, beta, acc.C10, acc.C11, acc.C12, acc.C13);
        StoreProductRow(c, row0 + ty + 32, col0 + tx, m, n, alpha, beta, acc.C20, acc.C21, acc.C22, acc.C23);
        StoreProductRow(c, row0 + ty + 48, col0 + tx, m, n, alpha, beta, acc.C30, acc.C31, acc.C32, acc.C33);
    }

    /// <summary>op(A) = A^T and op(B) = A, both stored [rows, columns] with the tile's index along memory.</summary>
    [Entry("syrk_f32", typeof(uint), typeof(F32))]
    [Entry("syrk_f16", typeof(ushort), typeof(F16))]
    [Entry("syrk_bf16", typeof(ushort), typeof(BF16))]
    public static void Syrk<TA, TFormatA>(ArrayView<TA> a, ArrayView<float> c, int rows, int columns, uint alpha_bits, uint beta_bits)
        where TA : unmanaged where TFormatA : struct, IFloatFormat<TA>
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(Slice * Pitch);
        ArrayView<float> bTile = SharedMemory.Allocate<float>(Slice * Pitch);
        int lid = Group.IdxX, tx = lid % 16, ty = lid / 16;
        long q = Grid.IdxX, tileRow = TriangleRow(q);
        long row0 = tileRow * Tile, col0 = (q - tileRow * (tileRow + 1) / 2) * Tile;
        var acc = default(Block);
        for (long k0 = 0; k0 < rows; k0 += Slice)
        {
            Stage<TA, TFormatA>(aTile, a, columns, false, row0, columns, k0, rows, lid);
            Stage<TA, TFormatA>(bTile, a, columns, false, col0, columns, k0, rows, lid);
            Group.Barrier();
            acc.MultiplySlice(aTile, bTile, tx, ty);
            Group.Barrier();
        }
        float alpha = Dialect.AsFloat(alpha_bits), beta = Dialect.AsFloat(beta_bits);
        StoreSymmetricRow(c, row0 + ty, col0 + tx, columns, alpha, beta, acc.C00, acc.C01, acc.C02, acc.C03);
        StoreSymmetricRow(c, row0 + ty + 16, col0 + tx, columns, alpha, beta, acc.C10, acc.C11, acc.C12, acc.C13);
        StoreSymmetricRow(c, row0 + ty + 32, col0 + tx, columns, alpha, beta, acc.C20, acc.C21, acc.C22, acc.C23);
        StoreSymmetricRow(c, row0 + ty + 48, col0 + tx, columns, alpha, beta, acc.C30, acc.C31, acc.C32, acc.C33);
    }

    /// <summary>
    /// Stages the Tile x Slice block of an operand X starting at (outer0, k0) into <c>tile[p * Pitch + o]</c>, widened
    /// (<c>nt_stage_*</c>): element (o, p) is <c>x[o * ld + p]</c> when p runs along memory, <c>x[p * ld + o]</c>
    /// otherwise; +0 outside outerCount x kCount. Element e = lid + 256 s is staged by thread e % 256, e running along
    /// whichever index is contiguous in memory.
    /// </summary>
    private static void Stage<T, TFormat>(ArrayView<float> tile, ArrayView<T> x, long ld, bool kContiguous,
        long outer0, long outerCount, long k0, long kCount, int lid)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        for (int s = 0; s < Tile * Slice / Threads; s++)
        {
            int e = lid + s * Threads;
            int o = kContiguous ? e / Slice : e % Tile;
            int p = kContiguous ? e % Slice : e / Tile;
            long go = outer0 + o, gp = k0 + p;
            float value = 0.0f;
            if (go < outerCount && gp < kCount) value = default(TFormat).Widen(x[kContiguous ? go * ld + gp : gp * ld + go]);
            tile[p * Pitch + o] = value;
        }
    }

    /// <summary>alpha * sum, plus beta times the old value only when beta != 0 (<c>nt_scale</c>).</summary>
    private static float Scale(float sum, float alpha, float beta, ArrayView<float> c, long index)
    {
        float s = Dialect.MulRn(alpha, sum);
        return beta == 0.0f ? s : Dialect.Fma(beta, c[index], s);
    }

    /// <summary>matmul's store of one row of a thread's block: columns col, col + 16, col + 32, col + 48, inside m x n.</summary>
    private static void StoreProductRow(ArrayView<float> c, long row, long col, int m, int n, float alpha, float beta,
        float v0, float v1, float v2, float v3)
    {
        if (row >= m) return;
        long at = row * n + col;
        if (col < n) c[at] = Scale(v0, alpha, beta, c, at);
        if (col + 16 < n) c[at + 16] = Scale(v1, alpha, beta, c, at + 16);
        if (col + 32 < n) c[at + 32] = Scale(v2, alpha, beta, c, at + 32);
        if (col + 48 < n) c[at + 48] = Scale(v3, alpha, beta, c, at + 48);
    }

    /// <summary>syrk's store of one row of a thread's block: the elements with col &lt;= row &lt; d, each at [row, col] and [col, row].</summary>
    private static void StoreSymmetricRow(ArrayView<float> c, long row, long col, int d, float alpha, float beta,
        float v0, float v1, float v2, float v3)
    {
        if (row >= d) return;
        StoreSymmetric(c, row, col, d, alpha, beta, v0);
        StoreSymmetric(c, row, col + 16, d, alpha, beta, v1);
        StoreSymmetric(c, row, col + 32, d, alpha, beta, v2);
        StoreSymmetric(c, row, col + 48, d, alpha, beta, v3);
    }

    private static void StoreSymmetric(ArrayView<float> c, long row, long col, int d, float alpha, float beta, float sum)
    {
        if (col > row) return;
        long lower = row * d + col;
        float value = Scale(sum, alpha, beta, c, lower);
        c[lower] = value;
        if (col != row) c[col * d + row] = value;
    }

    /// <summary>
    /// The tile row of the q-th tile of the lower block triangle: row r holds q in [r (r + 1) / 2, (r + 1) (r + 2) / 2).
    /// A binary32 square root guesses it; exact integer steps correct the guess, whatever its rounding.
    /// </summary>
    private static long TriangleRow(long q)
    {
        long r = (long)Dialect.MulRn(Dialect.AddRn(Dialect.SqrtRn(Dialect.AddRn(Dialect.MulRn(8.0f, q), 1.0f)), -1.0f), 0.5f);
        while (r > 0 && r * (r + 1) / 2 > q) r--;
        while ((r + 1) * (r + 2) / 2 <= q) r++;
        return r;
    }

    /// <summary>
    /// A thread's 4 x 4 block of accumulators, Cij for rows ty + 16 i and columns tx + 16 j, as sixteen fields rather
    /// than an array so they stay in registers (linalg.cl's <c>float acc[16]</c>, fully unrolled there).
    /// </summary>
    private struct Block
    {
        public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

        /// <summary><c>Cij += a[ty + 16 i] * b[tx + 16 j]</c> over one staged slice, p in order, one fused multiply-add each (<c>nt_multiply_slice</c>).</summary>
        public void MultiplySlice(ArrayView<float> a, ArrayView<float> b, int tx, int ty)
        {
            for (int p = 0; p < Slice; p++)
            {
                int at = p * Pitch;
                float l0 = a[at + ty], l1 = a[at + ty + 16], l2 = a[at + ty + 32], l3 = a[at + ty + 48];
                float r0 = b[at + tx], r1 = b[at + tx + 16], r2 = b[at + tx + 32], r3 = b[at + tx + 48];
                C00 = Dialect.Fma(l0, r0, C00); C01 = Dialect.Fma(l0, r1, C01); C02 = Dialect.Fma(l0, r2, C02); C03 = Dialect.Fma(l0, r3, C03);
                C10 = Dialect.Fma(l1, r0, C10); C11 = Dialect.Fma(l1, r1, C11); C12 = Dialect.Fma(l1, r2, C12); C13 = Dialect.Fma(l1, r3, C13);
                C20 = Dialect.Fma(l2, r0, C20); C21 = Dialect.Fma(l2, r1, C21); C22 = Dialect.Fma(l2, r2, C22); C23 = Dialect.Fma(l2, r3, C23);
                C30 = Dialect.Fma(l3, r0, C30); C31 = Dialect.Fma(l3, r1, C31); C32 = Dialect.Fma(l3, r2, C32); C33 = Dialect.Fma(l3, r3, C33);
            }
        }
    }
}
