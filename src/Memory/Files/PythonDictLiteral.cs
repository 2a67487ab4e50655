using System.Globalization;

namespace NativeTensor.Memory.Files;

/// <summary>
/// The strict subset of Python literal syntax a <c>.npy</c> header dict uses (what NumPy's <c>ast.literal_eval</c>
/// reads back from <c>np.save</c>): <c>{'key': value, ...}</c> with string keys and values that are a quoted string,
/// <c>True</c>/<c>False</c>, or a tuple of non-negative integers (<c>()</c>, <c>(n,)</c>, <c>(a, b)</c>). Anything else is
/// refused with the offending position: no general evaluator, so nothing in a file can do more than fail to parse.
/// </summary>
internal ref struct PythonDictLiteral
{
    private readonly ReadOnlySpan<char> _text;
    private readonly Func<string, Exception> _refuse;
    private int _at;

    private PythonDictLiteral(ReadOnlySpan<char> text, Func<string, Exception> refuse)
    {
        _text = text;
        _refuse = refuse;
    }

    /// <summary>The dict's entries in order; a value is a <see cref="string"/>, a <see cref="bool"/> or a <c>long[]</c>.</summary>
    /// <exception cref="Exception">Whatever <paramref name="refuse"/> builds, for any text that is not such a dict (a duplicate key included).</exception>
    public static Dictionary<string, object> Parse(ReadOnlySpan<char> text, Func<string, Exception> refuse)
    {
        var parser = new PythonDictLiteral(text, refuse);
        var entries = new Dictionary<string, object>(StringComparer.Ordinal);
        parser.SkipSpace();
        parser.Expect('{');
        parser.SkipSpace();
        while (!parser.TryTake('}'))
        {
            string key = parser.String();
            parser.SkipSpace();
            parser.Expect(':');
            parser.SkipSpace();
            object value = parser.Value();
            if (!entries.TryAdd(key, value)) throw refuse($"header dict has key '{key}' twice");
            parser.SkipSpace();
            if (parser.TryTake(',')) parser.SkipSpace();
            else
            {
                parser.Expect('}');
                break;
            }
        }
        parser.SkipSpace();
        if (parser._at != text.Length) throw parser.Error("text after the header dict's closing '}'");
        return entries;
    }

    private object Value()
    {
        char c = Peek();
        if (c is '\'' or '"') return String();
        if (c == '(') return Tuple();
        if (TryWord("True")) return true;
        if (TryWord("False")) return false;
        throw Error("expected a quoted string, True, False or a tuple of integers");
    }

    private long[] Tuple()
    {
        Expect('(');
        var items = new List<long>();
        SkipSpace();
        if (TryTake(')')) return [];
        while (true)
        {
            items.Add(Integer());
            SkipSpace();
            bool comma = TryTake(',');
            SkipSpace();
            if (TryTake(')'))
            {
                // "(5)" is the integer 5 in Python, not a tuple: NumPy always writes "(5,)".
                if (items.Count == 1 && !comma) throw Error("'(n)' is not a tuple; a 1-D shape is written '(n,)'");
                return [.. items];
            }
            if (!comma) throw Error("expected ',' or ')' in the shape tuple");
        }
    }

    private long Integer()
    {
        if (Peek() == '-') throw Error("a negative extent in the shape");
        int start = _at;
        while (_at < _text.Length && char.IsAsciiDigit(_text[_at])) _at++;
        if (_at == start) throw Error("expected a non-negative integer in the shape");
        if (!long.TryParse(_text[start.._at], NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            throw Error($"extent {_text[start.._at]} overflows a 64-bit integer");
        if (_at < _text.Length && _text[_at] == 'L') _at++; // Python 2's long suffix, in files written by old NumPy
        return value;
    }

    private string String()
    {
        char quote = Peek();
        if (quote is not ('\'' or '"')) throw Error("expected a quoted string");
        int start = ++_at;
        while (_at < _text.Length && _text[_at] != quote)
        {
            // Header strings are dtype codes and key names: an escape is never needed, so never interpreted.
            if (_text[_at] is '\\' or '\n') throw Error("an escape or line break inside a string");
            _at++;
        }
        if (_at == _text.Length) throw Error("an unterminated string");
        return new string(_text[start..(_at++)]);
    }

    private bool TryWord(string word)
    {
        if (!_text[_at..].StartsWith(word, StringComparison.Ordinal)) return false;
        int end = _at + word.Length;
        if (end < _text.Length && (char.IsAsciiLetterOrDigit(_text[end]) || _text[end] == '_')) return false;
        _at = end;
        return true;
    }

    private void SkipSpace()
    {
        while (_at < _text.Length && _text[_at] is ' ' or '\t' or '\n' or '\r') _at++;
    }

    private char Peek() => _at < _text.Length ? _text[_at] : throw Error("the header dict ends early");

    private bool TryTake(char c)
    {
        if (_at >= _text.Length || _text[_at] != c) return false;
        _at++;
        return true;
    }

    private void Expect(char c)
    {
        if (!TryTake(c)) throw Error($"expected '{c}'");
    }

    private readonly Exception Error(string what) => _refuse($"header dict is not a NumPy header literal at character {_at}: {what}");
}
