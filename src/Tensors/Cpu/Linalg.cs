namespace NativeTensor.Cpu;

/// <summary>
/// CPU matrix products. PLACEHOLDER being replaced by the packed, register-blocked kernels: for now a plain
/// row-parallel loop with Float32 accumulation, correct on every shape and dtype, slow.
/// </summary>
internal static unsafe class LinalgKernels
{
    public static void MatMul(byte* a, DType aType, bool transposeA, byte* b, DType bType, bool transposeB, float* c,
        int m, int n, int k, float alpha, float beta)
    {
        float[] left = Widen(a, aType, (long)m * k), right = Widen(b, bType, (long)k * n);
        nint output = (nint)c;
        Parallel.For(0, m, i =>
        {
            float* row = (float*)output + (long)i * n;
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (transposeA ? left[(long)p * m + i] : left[(long)i * k + p]) * (transposeB ? right[(long)j * k + p] : right[(long)p * n + j]);
                row[j] = beta == 0 ? alpha * sum : alpha * sum + beta * row[j];
            }
        });
    }

    public static void Syrk(byte* a, DType aType, int rows, int columns, float* c, float alpha, float beta) =>
        MatMul(a, aType, true, a, aType, false, c, columns, columns, rows, alpha, beta);

    private static float[] Widen(byte* source, DType dtype, long count)
    {
        var values = new float[count];
        fixed (float* destination = values)
            if (dtype == DType.Float32) Buffer.MemoryCopy(source, destination, count * 4, count * 4);
            else PrecisionKernels.ConvertSerial(source, dtype, (byte*)destination, DType.Float32, count, SimdWidths.Best);
        return values;
    }
}
