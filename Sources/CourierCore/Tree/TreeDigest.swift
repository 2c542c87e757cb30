import Crypto

/// The digest of a complete file list (docs/FORMAT.md §3.5): SHA-256 over one line per file, in
/// the byte order of the paths, `<mode> <size> <sha256> <path>\n` (mode as four octal digits,
/// size in decimal, sha256 in lowercase hex). The path comes last and cannot hold a newline or
/// any other control character (§3.2), so the lines are unambiguous.
///
/// A format 2 delta names this digest of its resulting tree instead of listing the tree; the
/// client computes it over the tree it built (`TreeChecker.check(_:digest:)`).
public struct TreeDigest {
    private var hasher = SHA256()
    private var last: [UInt8]? = nil
    public private(set) var files: UInt64 = 0
    public private(set) var bytes: UInt64 = 0

    public init() {}

    /// Adds the next file; files must come in the byte order of their paths (checked).
    public mutating func add(_ f: FileEntry) {
        let p = Array(f.path.utf8)
        precondition(last.map { $0.lexicographicallyPrecedes(p) } ?? true, "TreeDigest: files out of order")
        last = p
        hasher.update(data: Array("\(f.mode) \(f.size) \(f.sha256) ".utf8) + p + [0x0a])
        files += 1
        bytes &+= f.size
    }

    public func finalize() -> String { Hex.encode(hasher.finalize()) }

    /// The summary of a sorted list: count, bytes, digest.
    public static func summary(of files: [FileEntry]) -> Manifest.ResultSummary {
        var d = TreeDigest()
        for f in files.sorted(by: { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }) { d.add(f) }
        return Manifest.ResultSummary(files: d.files, bytes: d.bytes, digest: d.finalize())
    }
}
