import CourierCore
import FoundationEssentials
@preconcurrency import Glibc
import NIOCore

/// A download in progress for one destination `path`: the body goes to `path.partial`, and
/// `path.partial.json` (the sidecar) records which URL and which version of it (ETag,
/// Last-Modified) those bytes belong to. Both survive a killed process, so the next run can ask
/// for the rest with `Range` + `If-Range` instead of starting again; the destination itself only
/// ever appears complete, by rename.
///
/// A partial without a sidecar, or whose sidecar names another URL or carries no strong
/// validator, is never resumed: appending to bytes of unknown origin is how corrupt files are made.
struct PartialDownload {
    /// The sidecar's content. The URL is stored without credentials.
    struct Record: Codable, Equatable {
        var url: String
        var etag: String?
        var lastModified: String?

        var validators: Validators { Validators(etag: etag, lastModified: lastModified) }
    }

    let path: String
    var partialPath: String { path + ".partial" }
    var sidecarPath: String { path + ".partial.json" }

    /// What can be resumed for `url`: the bytes already on disk and the `If-Range` value that
    /// makes the server send the rest only if the resource is still the same. Nil when there is
    /// nothing usable (and then the leftovers are removed).
    func resumable(url: String) -> (offset: Int64, ifRange: String)? {
        guard let st = try? Sys.lstat(partialPath) else {
            try? Sys.unlink(sidecarPath)  // a sidecar alone is useless; absent is fine
            return nil
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0,
            let rec = record(), rec.url == url, let ifRange = rec.validators.ifRange
        else {
            discard()
            return nil
        }
        return (Int64(st.st_size), ifRange)
    }

    /// The sidecar, if there is a readable one.
    func record() -> Record? {
        guard Sys.exists(sidecarPath), let bytes = try? Sys.readFile(sidecarPath, limit: 64 << 10) else { return nil }
        return try? JSONDecoder().decode(Record.self, from: Data(bytes))
    }

    /// Records which URL and version the partial holds; written before the first body byte.
    func writeRecord(_ rec: Record) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try enc.encode(rec) } catch {
            throw CourierError(.io, "\(sidecarPath): cannot encode", cause: error)
        }
        try Sys.writeFileAtomically(sidecarPath, Array(data) + [0x0a])
    }

    /// Removes the partial and its sidecar (missing is fine).
    func discard() {
        try? Sys.unlink(partialPath)
        try? Sys.unlink(sidecarPath)
    }

    /// The sidecar only: a partial without a strong validator cannot be resumed, so it is not
    /// described as resumable.
    func forgetRecord() {
        try? Sys.unlink(sidecarPath)
    }

    /// Makes the finished partial the destination: fsync (done by the sink), rename, drop the
    /// sidecar, fsync the directory so the rename survives a crash.
    func commit() throws {
        try Sys.rename(partialPath, path)
        try? Sys.unlink(sidecarPath)
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        Sys.fsyncDirectory(dir.isEmpty ? "/" : dir)
    }
}

/// The open `.partial` file the body streams into, chunk by chunk: memory stays bounded by the
/// HTTP client's buffers, whatever the body's size. Writes are coalesced into a fixed buffer
/// so that many small network reads do not become as many `write` calls.
final class FileSink {
    /// Nil once `finish` or `abandon` closed it (the class's deinit closes it otherwise).
    private var fd: OwnedFD?
    private let display: String
    private var buffer: [UInt8] = []
    private static let bufferSize = 1 << 20

    /// Opens `path` for writing at `offset`: the file is cut to `offset` bytes (0 = start again),
    /// so a resume appends exactly after what the `Range` request asked for.
    init(path: String, offset: Int64) throws {
        display = path
        let file = try OwnedFD.open(path, O_WRONLY | O_CREAT | O_NOFOLLOW, 0o644)
        try Sys.truncate(file.raw, to: offset, display: path)
        try Sys.seek(file.raw, to: offset, display: path)
        fd = consume file
        buffer.reserveCapacity(FileSink.bufferSize)
    }

    /// The open descriptor; after `finish` or `abandon` any write is a clear error, not EBADF.
    private func descriptor() throws -> Int32 {
        guard let raw = fd?.raw else { throw CourierError(.io, "\(display): already closed") }
        return raw
    }

    func write(_ chunk: ByteBuffer) throws {
        if buffer.count + chunk.readableBytes > FileSink.bufferSize { try flush() }
        if chunk.readableBytes >= FileSink.bufferSize {
            let raw = try descriptor()
            try chunk.withUnsafeReadableBytes { try Sys.writeAll(raw, $0, display: display) }
        } else {
            chunk.withUnsafeReadableBytes { buffer.append(contentsOf: $0) }
        }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try Sys.writeAll(try descriptor(), buffer, display: display)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, fsyncs and closes: after this the bytes are on disk.
    func finish() throws {
        try flush()
        try Sys.fsync(try descriptor(), display: display)
        fd = nil  // closed before `PartialDownload.commit` renames it; close errors ignored, as ever
    }

    /// Flushes what was received and closes, keeping it for a later resume. Errors are not
    /// interesting here: the attempt has already failed for a better reason.
    func abandon() {
        try? flush()
        fd = nil
    }
}
