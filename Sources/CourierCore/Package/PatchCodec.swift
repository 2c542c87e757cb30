import CZstd

/// In-file binary deltas with zstd's "patch-from" mode through libzstd: the base content is a
/// referenced prefix (a raw-content dictionary, no copy), so the new content compresses to what
/// differs from it. One zstd frame, no checksum (the manifest names SHA-256 of the result) and
/// no dictionary id. Why zstd and not bsdiff or xdelta3: libzstd is already linked (libarchive
/// uses it), Debian ships it as a library, it is fuzzed upstream, and at the levels below whole
/// delta packages came to 1.05× (20 MiB binary), 1.19× (64 MiB signature database) and 1.23×
/// (1,000 text files) the size of the smallest per-file patch of bsdiff, xdelta3 and
/// `zstd -19 --patch-from` (`scripts/bench/delta.sh`, release build).
///
/// Memory: the compressor holds base and new content plus its match tables; the decompressor
/// holds base and result. Both are bounded by the caller's window cap (`delta_window`).
public enum PatchCodec {
    /// Level and threading, by size of base plus new content (measured on 2 cores, zstd 1.5.4,
    /// the 64 MiB signature database of `make bench`): up to 16 MiB, level 19 on one thread
    /// (seconds at most; best size). Above, level 12: zstd's optimal parsers (levels 16+) took
    /// 1–4.5 min on a 64 MiB prefix, and single-threaded they lost the long-distance matches
    /// (2.6 MB instead of 0.2 MB). Level 12 made 246 KB in 5 s with one libzstd worker and 253 KB
    /// in 4.9 s without (`zstd --single-thread`); bsdiff 205 KB in 39 s. The worker is asked for,
    /// but the static libzstd.a that `make release` links has no threads and refuses it (see
    /// FrameCompressor): release builds get the single-threaded figure.
    static func parameters(total: Int) -> (level: Int32, workers: Int32) {
        total <= 16 << 20 ? (19, 0) : (12, 1)
    }

    /// The window a patch of `base` + `new` bytes needs: the smallest power of two that holds
    /// both (the prefix must stay inside the window for the whole frame), at least 1 KiB.
    public static func windowLog(base: Int, new: Int) -> Int {
        var log = 10
        while log < 31 && (1 << log) < base + new { log += 1 }
        return log
    }

    /// Compresses `new` against `base`. Returns the frame and the window log it needs.
    public static func compress(base: UnsafeRawBufferPointer, new: UnsafeRawBufferPointer) throws -> (
        bytes: [UInt8], windowLog: Int
    ) {
        guard let cctx = ZSTD_createCCtx() else {
            throw CourierError(.io, "zstd: cannot allocate a compression context")
        }
        defer { ZSTD_freeCCtx(cctx) }
        let wlog = windowLog(base: base.count, new: new.count)
        let (level, workers) = parameters(total: base.count + new.count)
        func set(_ p: ZSTD_cParameter, _ v: Int32) throws {
            let r = ZSTD_CCtx_setParameter(cctx, p, v)
            if ZSTD_isError(r) != 0 { throw zstdError("setting a compression parameter", r) }
        }
        try set(ZSTD_c_compressionLevel, level)
        try set(ZSTD_c_windowLog, Int32(wlog))
        try set(ZSTD_c_enableLongDistanceMatching, 1)
        try set(ZSTD_c_checksumFlag, 0)
        try set(ZSTD_c_contentSizeFlag, 1)
        try set(ZSTD_c_dictIDFlag, 0)
        // A single-threaded libzstd ignores the worker count.
        if workers > 0 { _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, workers) }
        let r = ZSTD_CCtx_refPrefix(cctx, base.baseAddress, base.count)
        if ZSTD_isError(r) != 0 { throw zstdError("referencing the base", r) }
        let bound = ZSTD_compressBound(new.count)
        let out = try [UInt8](unsafeUninitializedCapacity: bound) { o, count in
            let n = ZSTD_compress2(cctx, o.baseAddress, o.count, new.baseAddress, new.count)
            if ZSTD_isError(n) != 0 { throw zstdError("compressing a patch", n) }
            count = n
        }
        return (out, wlog)
    }

    /// Decompresses a patch against `base` into exactly `resultSize` bytes. Refuses a patch that
    /// is not exactly one frame, declares a content size other
    /// than `resultSize`, or decodes to anything else; `what` names it in errors.
    public static func decompress(
        patch: UnsafeRawBufferPointer, base: UnsafeRawBufferPointer, resultSize: Int,
        windowLog: Int, what: String
    ) throws -> [UInt8] {
        func bad(_ why: String) -> CourierError { CourierError(.integrity, "\(what): \(why)") }
        guard patch.count > 0 else { throw bad("empty patch") }
        let frame = ZSTD_findFrameCompressedSize(patch.baseAddress, patch.count)
        guard ZSTD_isError(frame) == 0, frame == patch.count else { throw bad("not exactly one zstd frame") }
        guard let window = frameWindowSize(patch) else { throw bad("unreadable zstd frame header") }
        guard window <= UInt64(1) << UInt64(windowLog) else {
            throw bad("the frame needs a window of \(window) bytes, more than the 2^\(windowLog) its manifest allows")
        }
        // Memory is bounded by the caller (base + result ≤ its window cap): decoding in one shot
        // into a buffer of the expected size allocates no window of the frame's choosing.
        let declared = ZSTD_getFrameContentSize(patch.baseAddress, patch.count)
        if declared == COURIER_ZSTD_CONTENTSIZE_ERROR { throw bad("unreadable zstd frame header") }
        if declared != COURIER_ZSTD_CONTENTSIZE_UNKNOWN && declared != UInt64(resultSize) {
            throw bad("the frame makes \(declared) bytes, the manifest says \(resultSize)")
        }
        guard let dctx = ZSTD_createDCtx() else {
            throw CourierError(.io, "zstd: cannot allocate a decompression context")
        }
        defer { ZSTD_freeDCtx(dctx) }
        _ = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, Int32(max(windowLog, 10)))
        let r = ZSTD_DCtx_refPrefix(dctx, base.baseAddress, base.count)
        if ZSTD_isError(r) != 0 { throw zstdError("referencing the base", r) }
        // One byte of room beyond the expected size: a frame that makes more fails here
        // instead of being cut to size. Not zero-filled: only what zstd wrote is kept.
        return try [UInt8](unsafeUninitializedCapacity: resultSize + 1) { o, count in
            let n = ZSTD_decompressDCtx(dctx, o.baseAddress, o.count, patch.baseAddress, patch.count)
            if ZSTD_isError(n) != 0 {
                throw bad("does not decode against the base: \(String(cString: ZSTD_getErrorName(n)))")
            }
            guard n == resultSize else { throw bad("decodes to \(n) bytes, the manifest says \(resultSize)") }
            count = n
        }
    }

    /// The window a zstd frame declares (RFC 8878 §3.1.1.1): from its Window_Descriptor, or its
    /// content size for a single-segment frame. Read here because libzstd enforces
    /// `ZSTD_d_windowLogMax` only when streaming, and patches are decoded in one call. Nil for
    /// anything but a zstd frame header (a skippable frame too).
    public static func frameWindowSize(_ b: UnsafeRawBufferPointer) -> UInt64? {
        guard b.count >= 6, b[0] == 0x28, b[1] == 0xb5, b[2] == 0x2f, b[3] == 0xfd else { return nil }
        let fhd = b[4]
        guard fhd & 0x08 == 0 else { return nil }  // reserved bit must be zero
        let singleSegment = fhd & 0x20 != 0
        if !singleSegment {
            let wd = b[5]
            let log = 10 + UInt64(wd >> 3)
            guard log <= 41 else { return nil }
            let base = UInt64(1) << log
            return base + (base / 8) * UInt64(wd & 7)
        }
        // Single segment: the window is the frame content size, after the dictionary id.
        let didSize = [0, 1, 2, 4][Int(fhd & 3)]
        let fcsSize = [1, 2, 4, 8][Int(fhd >> 6)]
        let at = 5 + didSize
        guard b.count >= at + fcsSize else { return nil }
        var v: UInt64 = 0
        for i in 0..<fcsSize { v |= UInt64(b[at + i]) << (8 * UInt64(i)) }
        return fcsSize == 2 ? v + 256 : v
    }

    /// Bytes of `data` compressed alone at `level`: what carrying it whole would cost.
    public static func compressedSize(_ data: UnsafeRawBufferPointer, level: Int32) throws -> Int {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ZSTD_compressBound(data.count), alignment: 16)
        defer { scratch.deallocate() }
        let n = ZSTD_compress(scratch.baseAddress, scratch.count, data.baseAddress, data.count, level)
        if ZSTD_isError(n) != 0 { throw zstdError("compressing", n) }
        return n
    }

    static func zstdError(_ what: String, _ code: Int) -> CourierError {
        CourierError(.io, "zstd: \(what) failed: \(String(cString: ZSTD_getErrorName(code)))")
    }
}
