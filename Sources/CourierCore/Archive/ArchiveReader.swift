import CArchive
@preconcurrency import Glibc

/// A libarchive read handle over one package file. Only the tar format and the gzip and zstd
/// filters are enabled: a package is never a zip, a cpio or an ISO, and every reader format
/// left out is attack surface removed. Freed in `deinit`; every libarchive return code checked.
///
/// A package is read in two stages, because libarchive accepts more than FORMAT §1/§2 allow:
/// `decoder` only decompresses (the "raw" format), so Courier can check the filter chain — at
/// most one filter, and the one the file's first bytes name (zstd `28 b5 2f fd`, gzip `1f 8b`,
/// else none), which rules out gzip around zstd and a zstd skippable frame in front — and the
/// tar handle reads the decompressed bytes through a callback that shows them to a
/// `TarHeaderWalker` first, which sees each entry's raw type flag (libarchive reads an unknown
/// flag such as 'Z' or GNU sparse 'S' as a regular file and does not say so).
///
/// The decoder runs on a thread of its own (`DecoderPipe`) once the filter chain is checked, so
/// that decompression overlaps whatever the reading thread does with the data (hashing).
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

    /// The decompressed stream on its way from the decoder thread (`pipe`) to the tar handle.
    final class Tap {
        let pipe: DecoderPipe
        var walker = TarHeaderWalker()
        var error: String? = nil
        init(pipe: DecoderPipe) { self.pipe = pipe }

        func next(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
            let size = pipe.next(out, error: &error)
            if size > 0 { walker.feed(UnsafeRawBufferPointer(start: out.pointee, count: size)) }
            return size
        }
    }

    private let handle: OpaquePointer
    private let tap: Tap?
    /// Where the next data block of the current entry must start (`readBlock`).
    private var blockOffset: Int64 = 0
    /// The package file, closed after the handles are freed (stored properties go after
    /// `deinit`'s body); libarchive reads it (`archive_read_open_fd`) but never closes it.
    private let fd: OwnedFD
    public let path: String
    /// Size of the package file on disk, for expansion-ratio checks.
    public let fileSize: Int64

    /// What a reader accepts: a Courier package is tar + gzip/zstd only; an upstream vendor's
    /// download may be tar or zip with any of the common compressions.
    public enum Formats: Sendable { case package, upstream }

    /// `sameFileAs`: an open descriptor of the file to read (then `path` only names it in
    /// messages): read through a descriptor of its own on the same inode (`Sys.reopen`), so that
    /// what is read is what the caller holds open even if the path changes.
    public init(path: String, formats: Formats = .package, blockSize: Int = 256 << 10, sameFileAs: Int32? = nil) throws
    {
        self.path = path
        // Until every stored property is set, a throw destroys the ones already set: `fd` closes.
        if let sameFileAs {
            fd = try OwnedFD.reopen(sameFileAs, display: path)
        } else {
            fd = try OwnedFD.open(path, O_RDONLY)
        }
        let raw = fd.raw
        guard let st = try? Sys.fstat(raw, display: path), (st.st_mode & S_IFMT) == S_IFREG else {
            throw CourierError(.malformed, "\(path): not a regular file")
        }
        fileSize = Int64(st.st_size)
        if formats == .package {
            let (tar, tap) = try ArchiveReader.openPackage(raw, path: path, blockSize: blockSize)
            self.handle = tar
            self.tap = tap
            return
        }
        tap = nil
        guard let a = archive_read_new() else {
            throw CourierError(.io, "\(path): libarchive could not allocate a reader")
        }
        handle = a
        archive_read_support_format_tar(a)
        archive_read_support_format_zip(a)
        archive_read_support_filter_gzip(a)
        archive_read_support_filter_zstd(a)
        archive_read_support_filter_bzip2(a)
        archive_read_support_filter_xz(a)
        if archive_read_open_fd(a, raw, blockSize) != ARCHIVE_OK {
            // Every stored property is set, so deinit frees the handle and closes the fd.
            throw CourierError(
                .malformed, "\(path): not a readable archive (tar or zip): \(ArchiveReader.errorString(a))")
        }
    }

    /// The two handles of a package: the decoder (libzstd for zstd, else libarchive with its
    /// filter chain checked) and the tar reader fed by it through a `Tap`. On failure both are
    /// freed; the caller's owner closes the fd.
    private static func openPackage(_ fd: Int32, path: String, blockSize: Int) throws -> (OpaquePointer, Tap) {
        var magic = [UInt8](repeating: 0, count: 4)
        // A failed read leaves the format to libarchive, whose error then names it.
        let got = magic.withUnsafeMutableBytes { (try? Sys.pread(fd, $0.baseAddress!, 4, at: 0, display: path)) ?? -1 }
        let named: (code: Int32, name: String)
        if got == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            named = (ARCHIVE_FILTER_ZSTD, "zstd")
        } else if got >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            named = (ARCHIVE_FILTER_GZIP, "gzip")
        } else {
            named = (ARCHIVE_FILTER_NONE, "plain tar")
        }

        let pipe: DecoderPipe
        if named.code == ARCHIVE_FILTER_ZSTD {
            // libzstd decodes straight into the ring (ZstdFileDecoder): one copy fewer.
            pipe = DecoderPipe(zstd: try ZstdFileDecoder(fd: fd))
        } else {
            pipe = DecoderPipe(decoder: try openDecoder(fd, path: path, blockSize: blockSize, named: named))
        }
        do { try pipe.start() } catch {
            pipe.freeDecoder()
            throw error
        }
        guard let t = archive_read_new() else {
            pipe.stop()
            pipe.freeDecoder()
            throw CourierError(.io, "\(path): libarchive could not allocate a reader")
        }
        archive_read_support_format_tar(t)
        let tap = Tap(pipe: pipe)
        let read:
            @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int =
                { _, ctx, out in
                    Unmanaged<Tap>.fromOpaque(ctx!).takeUnretainedValue().next(out!)
                }
        if archive_read_open(t, Unmanaged.passUnretained(tap).toOpaque(), nil, read, nil) != ARCHIVE_OK {
            let why = tap.walker.firstProblem ?? tap.error ?? errorString(t)
            archive_read_free(t)
            pipe.stop()
            pipe.freeDecoder()
            throw CourierError(.malformed, "\(path): not a Courier package (tar, gzip or zstd): \(why)")
        }
        return (t, tap)
    }

    /// libarchive's decoder for a gzip or plain tar package, its filter chain checked.
    private static func openDecoder(_ fd: Int32, path: String, blockSize: Int, named: (code: Int32, name: String))
        throws -> OpaquePointer
    {
        func notAPackage(_ why: String) -> CourierError {
            CourierError(.malformed, "\(path): not a Courier package (tar, gzip or zstd): \(why)")
        }
        guard let d = archive_read_new() else {
            throw CourierError(.io, "\(path): libarchive could not allocate a reader")
        }
        archive_read_support_format_raw(d)
        archive_read_support_filter_gzip(d)
        archive_read_support_filter_zstd(d)
        var raw: OpaquePointer? = nil
        guard archive_read_open_fd(d, fd, blockSize) == ARCHIVE_OK, archive_read_next_header(d, &raw) == ARCHIVE_OK
        else {
            let e = notAPackage(errorString(d))
            archive_read_free(d)
            throw e
        }
        // The chain ends in the "none" reader of the file itself: one filter means a count of 2.
        let count = Int(archive_filter_count(d))
        let chain = (0..<max(count - 1, 0)).map { archive_filter_name(d, Int32($0)).map { String(cString: $0) } ?? "?" }
        let want = named.code == ARCHIVE_FILTER_NONE ? 1 : 2
        guard count == want, archive_filter_code(d, 0) == named.code else {
            archive_read_free(d)
            throw notAPackage(
                "one compression filter at most, the one the first bytes name (\(named.name)); "
                    + "found \(chain.isEmpty ? "none" : chain.joined(separator: " inside "))")
        }
        return d
    }

    deinit {
        archive_read_free(handle)
        if let tap {
            tap.pipe.stop()
            tap.pipe.freeDecoder()
        }
        // `fd` closes after this body, once nothing reads it.
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
            // The walker saw the headers first: its reason is the precise one.
            if let why = tap?.walker.firstProblem ?? tap?.error { throw CourierError(.malformed, "\(path): \(why)") }
            throw CourierError(.malformed, "\(path): damaged archive: \(ArchiveReader.errorString(handle))")
        }
        blockOffset = 0
        var packageName: [UInt8]? = nil
        if let tap {
            let at = archive_read_header_position(handle)
            guard let rec = tap.walker.take(at: at) else {
                throw CourierError(.malformed, "\(path): tar headers could not be followed at offset \(at)")
            }
            if let why = rec.problem { throw CourierError(.malformed, "\(path): \(why)") }
            packageName = rec.rawName
            if archive_entry_sparse_count(e) > 0 {
                throw CourierError(.malformed, "\(path): sparse entry (only plain regular files are allowed)")
            }
        }
        var raw: [UInt8] = []
        if let name = packageName {
            // A package's names as stored, byte for byte (libarchive would NFC-normalise pax names).
            raw = name
        } else if let p = archive_entry_pathname_utf8(e) ?? archive_entry_pathname(e) {
            // The UTF-8 form: independent of the process locale (C under cron and systemd).
            raw = Array(
                UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
        }
        let text = String(validating: raw, as: UTF8.self)
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
            if let why = tap?.error ?? tap?.walker.firstProblem { throw CourierError(.malformed, "\(path): \(why)") }
            throw CourierError(.malformed, "\(path): damaged archive data: \(ArchiveReader.errorString(handle))")
        }
        return n
    }

    /// The next block of the current entry's data, in place: valid until the next call on this
    /// reader; nil at the end of the entry. Saves the copy of `read(into:)` (libarchive hands out
    /// the decoder thread's buffer itself when a block lies within it). Data with a hole (a
    /// sparse layout) is refused.
    public func readBlock() throws -> UnsafeRawBufferPointer? {
        var buf: UnsafeRawPointer? = nil
        var size = 0
        var offset: Int64 = 0
        let r = archive_read_data_block(handle, &buf, &size, &offset)
        if r == ARCHIVE_EOF { return nil }
        guard r == ARCHIVE_OK else {
            if let why = tap?.error ?? tap?.walker.firstProblem { throw CourierError(.malformed, "\(path): \(why)") }
            throw CourierError(.malformed, "\(path): damaged archive data: \(ArchiveReader.errorString(handle))")
        }
        guard offset == blockOffset else {
            throw CourierError(
                .malformed,
                "\(path): entry data with a hole at offset \(blockOffset) (only plain regular files are allowed)")
        }
        blockOffset += Int64(size)
        return UnsafeRawBufferPointer(start: buf, count: size)
    }

    /// Reads the whole current entry, refusing more than `limit` bytes. `expected` (the header's
    /// size) reserves the memory once instead of growing by doubling (a 20 MB manifest would
    /// otherwise briefly cost 16 + 32 MB).
    /// The rest of the current entry, after `prefix` (which the limit does not count): a caller
    /// that needs the bytes behind a header, as the signature's message needs the manifest behind
    /// its domain string, gets them in one buffer instead of copying megabytes into another.
    public func readAll(limit: Int, what: String, expected: Int64 = 0, prefix: [UInt8] = []) throws -> [UInt8] {
        var out = prefix
        if expected > 0 && expected <= Int64(limit) { out.reserveCapacity(prefix.count + Int(expected)) }
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return out }
            if out.count - prefix.count + n > limit {
                throw CourierError(.limit, "\(path): \(what) is larger than the limit of \(limit) bytes")
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// After the last entry (`next()` returned nil): refuses anything but zero bytes after the
    /// tar end-of-archive block, and any byte after the compressed stream (FORMAT §1). libzstd
    /// fails on a tail that is not a frame, but libarchive's gzip reader stops silently at a
    /// tail that is not a gzip member, so the decoder is drained and the bytes it consumed are
    /// compared with the file's size. Upstream archives are not checked.
    public func finish() throws {
        guard let tap else { return }
        guard tap.walker.sawEnd else {
            throw CourierError(.malformed, "\(path): the tar stream has no end-of-archive block (truncated?)")
        }
        var out: UnsafeRawPointer? = nil
        while true {
            let n = tap.next(&out)
            if n == 0 { break }
            if n < 0 {
                throw CourierError(
                    .malformed, "\(path): \(tap.error ?? "damaged archive") (after the end of the archive)")
            }
        }
        if let at = tap.walker.trailingDataAt {
            throw CourierError(
                .malformed, "\(path): data after the tar end-of-archive block (at uncompressed offset \(at))")
        }
        // The decoder thread has reported the end of the stream; once joined, its handle is ours.
        tap.pipe.stop()
        let consumed = tap.pipe.consumedAfterStop
        if consumed != fileSize {
            throw CourierError(
                .malformed, "\(path): \(fileSize - consumed) bytes after the end of the compressed stream")
        }
    }

    /// Compressed bytes consumed so far (for the expansion-ratio bound).
    public var compressedBytesRead: Int64 {
        if let tap { return tap.pipe.compressedBytes.load(ordering: .relaxed) }
        return archive_filter_bytes(handle, -1)
    }
}
