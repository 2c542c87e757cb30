/// Sizes as operators write them, in configuration (`max_tree_bytes = "2G"`) and on the command
/// line (`courier-stage fetch --max-bytes 64M`): one parser, so that both accept the same words.
public enum SizeParser {
    /// `123` (bytes), `64K`, `500M`, `2G`, `1T`, optionally with `B` or `iB` (`500MiB`, `2GB`);
    /// powers of 1024 either way; spaces around are allowed. Nil when malformed, zero, negative
    /// or beyond `Int64`.
    public static func bytes(_ s: String) -> Int64? {
        var t = s.trimming(" ")
        var mult: Int64 = 1
        if t.hasSuffix("iB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        switch t.last {
        case "K", "k": mult = 1 << 10
        case "M", "m": mult = 1 << 20
        case "G", "g": mult = 1 << 30
        case "T", "t": mult = 1 << 40
        default: break
        }
        if mult != 1 { t.removeLast() }
        guard let n = Int64(t), n > 0, n <= Int64.max / mult else { return nil }
        return n * mult
    }
}
