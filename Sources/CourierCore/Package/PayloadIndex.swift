/// Which entries a package must carry, and which it has carried so far, without a dictionary.
///
/// A manifest's `files` are sorted by the bytes of their paths and unique (`Manifest.validate`),
/// so a path is found by binary search over the list the manifest already holds, and "carried"
/// and "seen" are one bit per file. For 100,000 files this is 25 KB, where the
/// `[PathKey: FileEntry]` dictionary it replaces was 25 MiB of heap, besides two `Set<PathKey>`
/// (docs/ARCHITECTURE.md, "Pipelined reader"). Payload entries
/// usually come in manifest order (Courier writes them so), so the entry after the last one found
/// is tried first.
struct PayloadIndex {
    /// Format 1: the manifest's `files`, with a bit for those carried. Format 2: the changes it
    /// carries whole (sorted by path, as `changed` is), all carried; its patches apart.
    let files: FileList
    let patches: [Manifest.Patch]
    private var carried: [UInt64]
    private var seen: [UInt64]
    private var patchSeen: [Bool]
    private(set) var carriedCount = 0
    private(set) var seenCount = 0
    private var hint = 0

    init(_ manifest: Manifest) {
        if manifest.changes != nil {
            files = FileList(manifest.wholeFiles)
            patches = manifest.patches ?? []
            seen = [UInt64](repeating: 0, count: (files.count + 63) / 64)
            carried = PayloadIndex.allSet(files.count)
            carriedCount = files.count + patches.count
            patchSeen = [Bool](repeating: false, count: patches.count)
            return
        }
        files = manifest.files
        patches = []
        patchSeen = []
        let words = (files.count + 63) / 64
        seen = [UInt64](repeating: 0, count: words)
        switch manifest.kind {
        case .full:
            carried = PayloadIndex.allSet(files.count)
            carriedCount = files.count
        case .delta:
            carried = [UInt64](repeating: 0, count: words)
            for p in manifest.changed ?? [] {
                // Validated: every changed path is among files, each once.
                let found = files.index(ofPath: p)
                if let i = found, !PayloadIndex.bit(carried, i) {
                    PayloadIndex.set(&carried, i)
                    carriedCount += 1
                }
            }
        }
    }

    enum Lookup {
        case carried(Manifest.PayloadEntry)
        case notCarried, twice
    }

    /// Looks an entry up by its whole name (`payload/<path>` or `patches/<i>`) and marks it seen.
    mutating func take(_ name: UnsafeRawBufferPointer) -> Lookup {
        let payload = PackageReader.payloadPrefix.utf8
        let patch = PackageReader.patchPrefix.utf8
        if name.starts(with: payload) {
            let path = UnsafeRawBufferPointer(rebasing: name[payload.count...])
            let i: Int
            if hint < files.count, files.comparePath(hint, path) == 0 {
                i = hint
            } else if let j = files.index(ofPath: path) {
                i = j
            } else {
                return .notCarried
            }
            guard bit(carried, i) else { return .notCarried }
            if bit(seen, i) { return .twice }
            set(&seen, i)
            seenCount += 1
            hint = i + 1
            return .carried(Manifest.PayloadEntry(kind: .file, list: files, index: i))
        }
        guard name.starts(with: patch) else { return .notCarried }
        // `patches/<i>`: decimal, no leading zero, an index the manifest has.
        let digits = name[patch.count...]
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            digits.first != 0x30 || digits.count == 1
        else { return .notCarried }
        let i = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard i < patches.count else { return .notCarried }
        if patchSeen[i] { return .twice }
        patchSeen[i] = true
        seenCount += 1
        let p = patches[i]
        return .carried(
            Manifest.PayloadEntry(
                kind: .patch(i), file: FileEntry(path: String(i), size: p.size, sha256: p.sha256, mode: 0o644)))
    }

    /// The first carried entry not seen (for the error of an incomplete payload), and how many.
    func missing() -> (first: String, count: Int)? {
        guard seenCount < carriedCount else { return nil }
        for i in files.indices where bit(carried, i) && !bit(seen, i) {
            return (files.pathString(i), carriedCount - seenCount)
        }
        for i in patchSeen.indices where !patchSeen[i] {
            return (PackageReader.patchPrefix + String(i), carriedCount - seenCount)
        }
        return nil
    }

    /// A bitset of `n` bits, all set.
    private static func allSet(_ n: Int) -> [UInt64] {
        let words = (n + 63) / 64
        var b = [UInt64](repeating: ~0, count: words)
        if n % 64 != 0, words > 0 { b[words - 1] = (1 << UInt64(n % 64)) - 1 }
        return b
    }

    private func bit(_ words: [UInt64], _ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    private func set(_ words: inout [UInt64], _ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    private static func set(_ words: inout [UInt64], _ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    private static func bit(_ words: [UInt64], _ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
}
