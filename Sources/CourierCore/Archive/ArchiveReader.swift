import CArchive
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A libarchive read handle over one package file. Only the tar format and the gzip and zstd
/// filters are enabled: a package is never a zip, a cpio or an ISO, and every reader format
/// left out is attack surface removed. Freed in `deinit`; every libarchive return code checked.
public final class ArchiveReader {
    /// What one archive header says, before any of its data is trusted.
    public struct Header {
        /// The entry's path, or nil if it is not valid UTF-8.
        public var path: String?
        public var rawPath: [UInt8]
        public var fileType: UInt32
        public var permissions: UInt32
        public var size: Int64
        public var sizeIsSet: Bool
        public var hardlink: String?
        public var symlink: String?

        public var isRegular: Bool { fileType == COURIER_AE_IFREG && hardlink == nil }
    }

    private let handle: OpaquePointer
    private let fd: Int32
    public let path: String
    /// Size of the package file on disk, for expansion-ratio checks.
    public let fileSize: Int64

    /// What a reader accepts: a Courier package is tar + gzip/zstd only; an upstream vendor's
    /// download may be tar or zip with any of the common compressions.
    public enum Formats: Sendable { case package, upstream }

    public init(path: String, formats: Formats = .package, blockSize: Int = 256 << 10) throws {
        self.path = path
        fd = try Sys.open(path, O_RDONLY)
        guard let st = try? Sys.fstat(fd, display: path), (st.st_mode & S_IFMT) == S_IFREG else {
            Sys.close(fd)
            throw CourierError(.malformed, "\(path): not a regular file")
        }
        fileSize = Int64(st.st_size)
        guard let a = archive_read_new() else {
            Sys.close(fd)
            throw CourierError(.io, "\(path): libarchive could not allocate a reader")
        }
        handle = a
        archive_read_support_format_tar(a)
        archive_read_support_filter_gzip(a)
        archive_read_support_filter_zstd(a)
        if formats == .upstream {
            archive_read_support_format_zip(a)
            archive_read_support_filter_bzip2(a)
            archive_read_support_filter_xz(a)
        }
        if archive_read_open_fd(a, fd, blockSize) != ARCHIVE_OK {
            // Every stored property is set, so deinit frees the handle and closes the fd.
            let msg = ArchiveReader.errorString(a)
            throw CourierError(.malformed, formats == .package ? "\(path): not a Courier package (tar, gzip or zstd): \(msg)"
                                                              : "\(path): not a readable archive (tar or zip): \(msg)")
        }
    }

    deinit {
        archive_read_free(handle)
        Sys.close(fd)
    }

    static func errorString(_ a: OpaquePointer) -> String {
        if let s = archive_error_string(a) { return String(cString: s) }
        return "unknown libarchive error"
    }

    /// The next header, or nil at the end of the archive. A warning is treated as an error:
    /// a package Courier accepts reads cleanly.
    public func next() throws -> Header? {
        try UTF8Locale.with { try nextHeader() }
    }

    private func nextHeader() throws -> Header? {
        var entry: OpaquePointer? = nil
        let r = archive_read_next_header(handle, &entry)
        if r == ARCHIVE_EOF { return nil }
        guard r == ARCHIVE_OK, let e = entry else {
            throw CourierError(.malformed, "\(path): damaged archive: \(ArchiveReader.errorString(handle))")
        }
        var raw: [UInt8] = []
        var text: String? = nil
        // The UTF-8 form: independent of the process locale (C under cron and systemd).
        if let p = archive_entry_pathname_utf8(e) ?? archive_entry_pathname(e) {
            raw = Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
            text = String(validating: raw, as: UTF8.self)
        }
        let mode = UInt32(archive_entry_mode(e))
        return Header(
            path: text, rawPath: raw,
            fileType: UInt32(archive_entry_filetype(e)),
            permissions: mode & 0o7777,
            size: archive_entry_size(e),
            sizeIsSet: archive_entry_size_is_set(e) != 0,
            hardlink: archive_entry_hardlink(e).map { String(cString: $0) },
            symlink: archive_entry_symlink(e).map { String(cString: $0) })
    }

    /// Reads the current entry's data into `buffer`; 0 at the end of the entry.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = archive_read_data(handle, buffer.baseAddress, buffer.count)
        if n < 0 {
            throw CourierError(.malformed, "\(path): damaged archive data: \(ArchiveReader.errorString(handle))")
        }
        return n
    }

    /// Reads the whole current entry, refusing more than `limit` bytes.
    public func readAll(limit: Int, what: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return out }
            if out.count + n > limit {
                throw CourierError(.limit, "\(path): \(what) is larger than the limit of \(limit) bytes")
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Compressed bytes consumed so far (for the expansion-ratio bound).
    public var compressedBytesRead: Int64 { archive_filter_bytes(handle, -1) }
}
