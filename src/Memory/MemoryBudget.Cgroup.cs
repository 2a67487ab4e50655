using System.Globalization;
using System.Text;

namespace NativeTensor.Memory;

/// <summary>
/// Finds this process's memory cgroup and reads its limits: <c>/proc/self/cgroup</c> names the cgroup,
/// <c>/proc/self/mountinfo</c> says where its hierarchy is mounted, and the controller's files in that directory and
/// each parent up to the mount give the limits (cgroups(7), Documentation/admin-guide/cgroup-v1/memory.rst and
/// cgroup-v2.rst).
/// </summary>
/// <remarks>
/// <para>Which version: a controller is attached to one hierarchy only. When a v1 line lists the <c>memory</c>
/// controller and a v1 <c>cgroup</c> mount carries the <c>memory</c> option, memory is accounted there (a hybrid host
/// also has a <c>0::</c> line for the unified hierarchy, without the memory controller); otherwise the <c>0::</c> line
/// and the <c>cgroup2</c> mount are used. This is the order the .NET runtime and cAdvisor follow.</para>
/// <para>Where: the cgroup path is relative to the hierarchy's root, the mount's root field is the part of that
/// hierarchy the mount shows. In a container with a cgroup namespace both are <c>/</c> and the directory is the mount
/// point; without one the path starts with the mount root and the rest is appended. A path outside the mounted
/// subtree cannot be read: no cgroup is reported (as the .NET runtime does).</para>
/// <para>Limits nest: a cgroup is bounded by every ancestor's limit too, so each directory from the process's cgroup
/// up to the mount point is read and the smallest limit wins. v1's <c>hierarchical_memory_limit</c> (memory.stat) is
/// the kernel's own minimum, ancestors above the mount included, and is taken when smaller.</para>
/// </remarks>
internal static class CgroupFiles
{
    public const string CgroupFile = "/proc/self/cgroup";
    public const string MountInfo = "/proc/self/mountinfo";

    /// <summary>
    /// Limits at or past this are "no limit": v1 writes PAGE_COUNTER_MAX pages (0x7FFFFFFFFFFFF000 with 4 KiB pages,
    /// 0x7FFFFFFFFFFF0000 with 64 KiB ones), so one threshold covers every page size; no machine has 4 EiB.
    /// </summary>
    public const long Unlimited = 1L << 62;

    /// <summary>The memory cgroup of this process, or null when there is none to read (see remarks on the type).</summary>
    /// <exception cref="InvalidDataException">A line of /proc/self/cgroup or /proc/self/mountinfo, or a memory file, is malformed.</exception>
    public static CgroupMemory? Read(Func<string, string?> readFile)
    {
        if (readFile(CgroupFile) is not { } cgroups || readFile(MountInfo) is not { } mounts) return null;
        var lines = ParseCgroups(cgroups);
        var mountList = ParseMounts(mounts);

        string? v1Path = lines.FirstOrDefault(l => l.Id != "0" && l.Controllers.Contains("memory")).Path;
        Mount? v1Mount = mountList.FirstOrDefault(m => m.FsType == "cgroup" && m.SuperOptions.Contains("memory"));
        if (v1Path is not null && v1Mount is not null) return ReadLevels(readFile, 1, v1Path, v1Mount);

        string? v2Path = lines.FirstOrDefault(l => l.Id == "0" && l.Controllers.Length == 0).Path;
        Mount? v2Mount = mountList.FirstOrDefault(m => m.FsType == "cgroup2");
        return v2Path is not null && v2Mount is not null ? ReadLevels(readFile, 2, v2Path, v2Mount) : null;
    }

    private static CgroupMemory? ReadLevels(Func<string, string?> readFile, int version, string path, Mount mount)
    {
        if (Resolve(mount, path) is not { } leaf) return null;
        long? limit = null, high = null, headroom = null, usage = null, inactive = null;
        string? limitDirectory = null;
        (long Limit, string Directory)? hierarchical = null;
        for (string directory = leaf; ; directory = Parent(directory))
        {
            Level level = version == 2 ? ReadV2(readFile, directory) : ReadV1(readFile, directory);
            if (usage is null && level.Usage is not null) (usage, inactive) = (level.Usage, level.InactiveFile ?? 0);
            if (level.Limit is long l)
            {
                long workingSet = WorkingSet(level.Usage ?? throw new InvalidDataException(
                    $"{directory} has a memory limit but no usage file ({(version == 2 ? "memory.current" : "memory.usage_in_bytes")})"), level.InactiveFile);
                headroom = Math.Min(headroom ?? long.MaxValue, Math.Max(0, l - workingSet));
                if (l < (limit ?? long.MaxValue)) (limit, limitDirectory) = (l, directory);
            }
            if (level.High is long h) high = Math.Min(high ?? long.MaxValue, h);
            if (usage is not null && level.Hierarchical is long hier && hier < (hierarchical?.Limit ?? long.MaxValue))
                hierarchical = (hier, directory);
            if (directory == mount.MountPoint || directory == "/") break;
        }
        // A hierarchical limit below every limit on the path is set above the mount, where we cannot read the charge:
        // bound the headroom by it less our own cgroup's working set (an ancestor's charge is at least that).
        if (hierarchical is (long hierLimit, string hierDirectory) && hierLimit < (limit ?? long.MaxValue))
        {
            (limit, limitDirectory) = (hierLimit, hierDirectory + " (hierarchical_memory_limit)");
            headroom = Math.Min(headroom ?? long.MaxValue, Math.Max(0, hierLimit - WorkingSet(usage ?? 0, inactive)));
        }
        if (usage is null && limit is null) return null;   // the controller is not enabled on this path: nothing to report
        return new CgroupMemory(version, path, leaf, limit, limitDirectory, high, usage ?? 0, inactive ?? 0,
            WorkingSet(usage ?? 0, inactive), headroom);
    }

    /// <summary>
    /// Usage less inactive file pages (clamped at 0): the kubelet's and cAdvisor's "working set". The kernel reclaims
    /// inactive page cache before it invokes the OOM killer, so counting it as used would make a cgroup that has just
    /// read a large file (a mapped .npy, say) look full. Active file pages are kept as used: the kernel is reluctant to
    /// evict them, so that errs on the safe side.
    /// </summary>
    private static long WorkingSet(long usage, long? inactiveFile) => Math.Max(0, usage - (inactiveFile ?? 0));

    private readonly record struct Level(long? Limit, long? High, long? Usage, long? InactiveFile, long? Hierarchical);

    private static Level ReadV2(Func<string, string?> readFile, string directory)
    {
        string? stat = readFile(directory + "/memory.stat");
        return new Level(
            Bytes(readFile, directory + "/memory.max", allowMax: true),
            Bytes(readFile, directory + "/memory.high", allowMax: true),
            Bytes(readFile, directory + "/memory.current", allowMax: false),
            stat is null ? null : ProcFiles.Kilobytes(stat, directory + "/memory.stat", "inactive_file", ' '),
            null);
    }

    private static Level ReadV1(Func<string, string?> readFile, string directory)
    {
        string? stat = readFile(directory + "/memory.stat");
        string statPath = directory + "/memory.stat";
        long? hierarchical = stat is null ? null : ProcFiles.Kilobytes(stat, statPath, "hierarchical_memory_limit", ' ');
        return new Level(
            Bytes(readFile, directory + "/memory.limit_in_bytes", allowMax: false),
            null,
            Bytes(readFile, directory + "/memory.usage_in_bytes", allowMax: false),
            stat is null ? null : ProcFiles.Kilobytes(stat, statPath, "total_inactive_file", ' ') ?? ProcFiles.Kilobytes(stat, statPath, "inactive_file", ' '),
            hierarchical >= Unlimited ? null : hierarchical);
    }

    /// <summary>A one-number cgroup file: null when absent, when <c>max</c> (v2) or when at least <see cref="Unlimited"/>.</summary>
    private static long? Bytes(Func<string, string?> readFile, string path, bool allowMax)
    {
        if (readFile(path) is not { } text) return null;
        string value = text.Trim();
        if (allowMax && value == "max") return null;
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long bytes))
            throw new InvalidDataException($"{path}: '{Shorten(value)}' is not a byte count{(allowMax ? " or 'max'" : "")}");
        return bytes >= Unlimited ? null : bytes;
    }

    /// <summary>The cgroup's directory under the mount, or null when the path lies outside the mounted subtree.</summary>
    private static string? Resolve(Mount mount, string path)
    {
        string relative;
        if (mount.Root == "/") relative = path;
        else if (path == mount.Root) relative = "/";
        else if (path.StartsWith(mount.Root + "/", StringComparison.Ordinal)) relative = path[mount.Root.Length..];
        else return null;
        string directory = (mount.MountPoint.TrimEnd('/') + relative).TrimEnd('/');
        return directory.Length == 0 ? "/" : directory;
    }

    private static string Parent(string directory)
    {
        int slash = directory.LastIndexOf('/');
        return slash <= 0 ? "/" : directory[..slash];
    }

    private readonly record struct CgroupLine(string Id, string[] Controllers, string Path);

    /// <summary>Lines <c>hierarchy-ID:controller-list:cgroup-path</c> (cgroups(7)); the path may itself hold colons.</summary>
    private static List<CgroupLine> ParseCgroups(string text)
    {
        var lines = new List<CgroupLine>();
        int number = 0;
        foreach (string line in text.Split('\n'))
        {
            number++;
            if (line.Length == 0) continue;
            int first = line.IndexOf(':'), second = first < 0 ? -1 : line.IndexOf(':', first + 1);
            if (first <= 0 || second < 0 || !line[..first].All(char.IsAsciiDigit) || second + 1 >= line.Length || line[second + 1] != '/')
                throw new InvalidDataException($"{CgroupFile} line {number}: '{Shorten(line)}' is not 'hierarchy-id:controllers:/path'");
            string[] controllers = line[(first + 1)..second].Split(',', StringSplitOptions.RemoveEmptyEntries);
            lines.Add(new CgroupLine(line[..first], controllers, line[(second + 1)..]));
        }
        return lines;
    }

    private sealed record Mount(string Root, string MountPoint, string FsType, string[] SuperOptions);

    /// <summary>
    /// Lines <c>id parent major:minor root mount-point options [optional...] - fstype source super-options</c>
    /// (proc(5)); root and mount point escape space, tab, newline and backslash as octal <c>\ooo</c>.
    /// </summary>
    private static List<Mount> ParseMounts(string text)
    {
        var mounts = new List<Mount>();
        int number = 0;
        foreach (string line in text.Split('\n'))
        {
            number++;
            if (line.Length == 0) continue;
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (separator < 6 || fields.Length < separator + 4)
                throw new InvalidDataException($"{MountInfo} line {number}: '{Shorten(line)}' does not have six fields, '-', fstype, source and options");
            if (fields[separator + 1] is not ("cgroup" or "cgroup2")) continue;
            string root = Unescape(fields[3], number), mountPoint = Unescape(fields[4], number);
            if (!root.StartsWith('/') || !mountPoint.StartsWith('/'))
                throw new InvalidDataException($"{MountInfo} line {number}: root '{Shorten(root)}' and mount point '{Shorten(mountPoint)}' must be absolute");
            mounts.Add(new Mount(root, mountPoint, fields[separator + 1], fields[separator + 3].Split(',')));
        }
        return mounts;
    }

    private static string Unescape(string field, int number)
    {
        if (!field.Contains('\\')) return field;
        var text = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] != '\\') { text.Append(field[i]); continue; }
            if (!IsOctal(field, i + 1))
                throw new InvalidDataException($"{MountInfo} line {number}: '{Shorten(field)}' has a '\\' that is not an octal escape \\ooo");
            text.Append((char)((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
            i += 3;
        }
        return text.ToString();
    }

    private static bool IsOctal(string field, int start) =>
        start + 3 <= field.Length && field.AsSpan(start, 3).IndexOfAnyExceptInRange('0', '7') < 0;

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "...";
}
