namespace NativeTensor.Runtime;

/// <summary>
/// The geometry of one attention call (see <see cref="Attention"/> for the math): q is [Batch, QueryHeads, Queries,
/// HeadDim], the output and the output gradient likewise; keys and values are stored [Batch, KvHeads, KeyRows,
/// HeadDim], and key j of a head is its storage row <c>(KeyFirst + j) mod KeyRows</c> for j &lt; Keys, so a KV cache's
/// ring or the held part of a linear cache is read in place; a plain tensor has KeyFirst 0 and KeyRows = Keys. The
/// log-sum-exp is Float32 [Batch, QueryHeads, Queries]. q, k, v, the output and the gradients share <see cref="DType"/>.
/// Arguments arrive validated: every size at least 1, QueryHeads a multiple of KvHeads, 0 &lt;= KeyFirst &lt; KeyRows,
/// Keys &lt;= KeyRows, HeadDim &lt;= <see cref="Attention.MaxHeadDim"/>, Window &gt;= 0 (0: no window), Scale finite
/// and positive, buffers large enough.
/// </summary>
internal readonly record struct AttentionShape(
    DType DType, int Batch, int QueryHeads, int KvHeads, int Queries, int Keys, int HeadDim, bool Causal, int Window, float Scale,
    int KeyRows, int KeyFirst)
{
    /// <summary>A plain call: keys stored densely, key j in row j.</summary>
    public AttentionShape(DType dtype, int batch, int queryHeads, int kvHeads, int queries, int keys, int headDim, bool causal, int window, float scale)
        : this(dtype, batch, queryHeads, kvHeads, queries, keys, headDim, causal, window, scale, keys, 0) { }

    /// <summary>Query heads per key/value head: query head h reads key/value head h / Group.</summary>
    public int Group => QueryHeads / KvHeads;

    /// <summary>Elements of q, the output and its gradient.</summary>
    public long QueryElements => (long)Batch * QueryHeads * Queries * HeadDim;

    /// <summary>Elements of one key or value store (what the buffers of k and v hold at least).</summary>
    public long KeyElements => (long)Batch * KvHeads * KeyRows * HeadDim;

    /// <summary>Rows of the log-sum-exp: one per query of each head.</summary>
    public long QueryRows => (long)Batch * QueryHeads * Queries;

    /// <summary>Whether keys are stored densely from row 0 (not a cache's ring or window).</summary>
    public bool IsDense => KeyFirst == 0 && KeyRows == Keys;

    /// <summary>The position of query i among the keys: bottom-right aligned, so the last query sits at the last key.</summary>
    public long Position(long query) => (long)Keys - Queries + query;

    /// <summary>
    /// The keys query i sees, [First, Last]; empty (First &gt; Last) when it sees none. Key j is visible iff
    /// (!Causal or j &lt;= p) and (Window == 0 or j &gt; p - Window), p = <see cref="Position"/>.
    /// </summary>
    public (long First, long Last) Visible(long query)
    {
        long p = Position(query);
        long first = Window > 0 ? Math.Max(0, p - Window + 1) : 0;
        long last = Causal ? Math.Min(Keys - 1L, p) : Keys - 1L;
        return (first, last);
    }
}
