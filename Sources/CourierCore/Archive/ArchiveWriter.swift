import CArchive
import CCourierShim
@preconcurrency import Glibc

/// Compression of the tar stream inside a package. zstd is the default: on this class of machine
/// it inflates several times faster than gzip at a similar ratio (docs/BENCHMARKS.md); gzip is
/// there for peers that only speak zlib.
public enum Compression: String, Sendable, CaseIterable {
    case zstd, gzip, none
}

/// A libarchive write handle producing a POSIX pax tar stream onto a file descriptor.
/// It writes whatever it is told — including hostile entries, which the tests need — so the
/// rules of a valid package live in `PackageBuilder`, not here.
public final class ArchiveWriter {
    public enum EntryType {
        case regular, directory
        case symlink(String)
        case hardlink(String)
        case charDevice, blockDevice, fifo, socket
    }

    private let handle: OpaquePointer
    private let display: String
    /// zstd on worker threads, when asked for (`threads` ≥ 1).
    private var frames: FrameCompressor? = nil
    private var finished = false

    /// `threads`: zstd worker threads. 0 compresses on the calling thread (libarchive's filter,
    /// one frame); n ≥ 1 hands the tar stream to n workers (`FrameCompressor`, one frame per
    /// 4 MiB), so the caller's own work (reading and hashing files) overlaps the compression.
    /// Every zstd decoder reads both; the file's bytes differ with the thread count, the tar
    /// stream inside does not. Ignored for gzip and none.
    public init(fd: Int32, display: String, compression: Compression = .zstd, level: Int? = nil, threads: Int = 0)
        throws
    {
        self.display = display
        guard let a = archive_write_new() else {
            throw CourierError(.io, "\(display): libarchive could not allocate a writer")
        }
        handle = a
        finished = true  // nothing to flush if opening fails; deinit frees the handle
        func check(_ r: Int32, _ what: String) throws {
            if r != ARCHIVE_OK {
                let msg = archive_error_string(a).map { String(cString: $0) } ?? "error \(r)"
                throw CourierError(.io, "\(display): \(what): \(msg)")
            }
        }
        try check(archive_write_set_format_pax_restricted(a), "tar format")
        switch compression {
        case .zstd where threads > 0:
            frames = try FrameCompressor(fd: fd, display: display, level: level ?? 3, workers: threads)
        case .zstd:
            try check(archive_write_add_filter_zstd(a), "zstd filter")
            try check(archive_write_set_filter_option(a, "zstd", "compression-level", String(level ?? 3)), "zstd level")
        case .gzip:
            try check(archive_write_add_filter_gzip(a), "gzip filter")
            try check(archive_write_set_filter_option(a, "gzip", "compression-level", String(level ?? 6)), "gzip level")
        case .none:
            break
        }
        // No padding of the last block: the file ends where the data does.
        try check(archive_write_set_bytes_in_last_block(a, 1), "block size")
        if let frames {
            // libarchive writes the plain tar stream to the compressor, which writes the file.
            let write: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeRawPointer?, Int) -> Int = {
                _, ctx, buf, n in
                let c = Unmanaged<FrameCompressor>.fromOpaque(ctx!).takeUnretainedValue()
                do {
                    try c.write(UnsafeRawBufferPointer(start: buf, count: n))
                    return n
                } catch { return -1 }
            }
            try check(archive_write_open(a, Unmanaged.passUnretained(frames).toOpaque(), nil, write, nil), "open")
        } else {
            try check(archive_write_open_fd(a, fd), "open")
        }
        finished = false
    }

    deinit {
        if !finished { archive_write_close(handle) }
        archive_write_free(handle)
    }

    private func fail(_ what: String) -> CourierError {
        if let e = frames?.error { return e }
        let msg = archive_error_string(handle).map { String(cString: $0) } ?? "unknown error"
        return CourierError(.io, "\(display): writing \(what): \(msg)")
    }

    /// Writes one entry header. `size` is what the header declares, whatever data follows.
    /// `rawPath` (tests only) writes name bytes as they are, even if they are not UTF-8.
    public func writeHeader(
        path: String, type: EntryType = .regular, permissions: UInt32 = 0o644,
        size: Int64, mtime: Int64 = 0, rawPath: [UInt8]? = nil
    ) throws {
        guard let e = archive_entry_new() else { throw fail(path) }
        defer { archive_entry_free(e) }
        if let raw = rawPath {
            (raw + [0]).withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) {
                    archive_entry_copy_pathname(e, $0)
                }
            }
        } else {
            // UTF-8 whatever the locale: the C locale of cron would otherwise refuse non-ASCII names.
            // The multibyte form in a UTF-8 locale, not `set_pathname_utf8`: libarchive converts
            // a name given as UTF-8 to NFC on the way in, so an NFD name ("e\u{301}") would be
            // written as another name than the manifest lists (FORMAT §8: names are bytes).
            UTF8Locale.with { archive_entry_copy_pathname(e, path) }
        }
        var ft: UInt32 = COURIER_AE_IFREG
        switch type {
        case .regular: ft = COURIER_AE_IFREG
        case .directory: ft = COURIER_AE_IFDIR
        case .symlink(let t):
            ft = COURIER_AE_IFLNK
            archive_entry_set_symlink_utf8(e, t)
        case .hardlink(let t):
            ft = COURIER_AE_IFREG
            archive_entry_set_hardlink_utf8(e, t)
        case .charDevice:
            ft = COURIER_AE_IFCHR
            archive_entry_set_rdev(e, courier_makedev(1, 3))
        case .blockDevice:
            ft = COURIER_AE_IFBLK
            archive_entry_set_rdev(e, courier_makedev(7, 0))
        case .fifo: ft = COURIER_AE_IFIFO
        case .socket: ft = COURIER_AE_IFSOCK
        }
        archive_entry_set_filetype(e, ft)
        archive_entry_set_perm(e, mode_t(permissions))
        archive_entry_set_size(e, size)
        archive_entry_set_mtime(e, time_t(mtime), 0)
        archive_entry_set_uid(e, 0)
        archive_entry_set_gid(e, 0)
        let r = UTF8Locale.with { archive_write_header(handle, e) }
        if r != ARCHIVE_OK && !(r == ARCHIVE_WARN && rawPath != nil) { throw fail(path) }
    }

    public func writeData(_ buf: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < buf.count {
            let n = archive_write_data(handle, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { throw fail("data") }
            off += n
        }
    }

    public func writeData(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeData($0) }
    }

    /// Convenience: a regular entry with its data.
    public func writeFile(path: String, bytes: [UInt8], permissions: UInt32 = 0o644, mtime: Int64 = 0) throws {
        try writeHeader(path: path, permissions: permissions, size: Int64(bytes.count), mtime: mtime)
        try writeData(bytes)
    }

    /// Flushes the compressor and the end-of-archive blocks. The caller fsyncs and closes the fd.
    public func finish() throws {
        finished = true
        if archive_write_close(handle) != ARCHIVE_OK { throw fail("end of archive") }
        try frames?.finish()
    }
}
