import Crypto
@preconcurrency import Glibc

extension TreeScanner {
    /// `scan`, with the files hashed on `jobs` threads of our own (`Parallel.forEach`): the walk
    /// (names, types, modes) is `scan`'s own, without hashes; then each file is opened under the
    /// root (`O_NOFOLLOW`, as the package writer opens it) and hashed. A build hashes every byte
    /// before the manifest can be written, and SHA-256 of one file runs on one core, so on two
    /// cores this halves the first of a build's two passes (docs/ARCHITECTURE.md, "Threaded
    /// writer"). The result is the same list `scan` returns; one thread or no hashing is `scan`.
    public static func scan(_ root: String, options: Options, jobs: Int) throws -> [FileEntry] {
        guard options.hash, jobs > 1 else { return try scan(root, options: options) }
        var listing = options
        listing.hash = false
        let files = try scan(root, options: listing)
        if files.count < 2 { return try scan(root, options: options) }

        final class Results: Sendable {
            let done: Locked<[(digest: String, size: UInt64)?]>
            let failure = Locked<CourierError?>(nil)
            init(_ n: Int) { done = Locked([(digest: String, size: UInt64)?](repeating: nil, count: n)) }
        }
        let results = Results(files.count)
        let rootDir = try OwnedFD.openDirectory(root)
        // The closure escapes (it runs on other threads), so it captures the number; `forEach`
        // returns only when every job is done, and the owner lives to the end of this scope.
        let rootfd = rootDir.raw
        Parallel.forEach(count: files.count, jobs: jobs) { i in
            if results.failure.withLock({ $0 != nil }) { return }
            let f = files[i]
            let shown = root + "/" + f.path
            do {
                let fd = try OwnedFD.open(at: rootfd, f.path, O_RDONLY | O_NOFOLLOW, display: shown)
                // A buffer per file, no larger than the file: many small files stay cheap.
                let n = Int(min(max(f.size, 4096), 1 << 20))
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
                defer { buffer.deallocate() }
                let r = try hashFile(fd.raw, display: shown, buffer: buffer)
                results.done.withLock { $0[i] = (r.0, r.1) }
            } catch let e as CourierError {
                results.failure.withLock { if $0 == nil { $0 = e } }
            } catch {
                results.failure.withLock { if $0 == nil { $0 = CourierError(.io, "\(Escape.text(shown)): \(error)") } }
            }
        }
        if let e = results.failure.withLock({ $0 }) { throw e }
        let hashed = results.done.withLock { $0 }
        var out: [FileEntry] = []
        out.reserveCapacity(files.count)
        var total: UInt64 = 0
        for (f, h) in zip(files, hashed) {
            guard let h else { throw CourierError(.io, "\(Escape.text(root + "/" + f.path)): not hashed") }
            total += h.size
            out.append(FileEntry(path: f.path, size: h.size, sha256: h.digest, mode: f.permissions ?? 0o644))
        }
        if total > options.limits.maxTotalBytes {
            throw CourierError(.limit, "\(root): more than \(options.limits.maxTotalBytes) bytes")
        }
        return out
    }
}
