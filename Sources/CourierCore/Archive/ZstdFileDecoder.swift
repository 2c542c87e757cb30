import CZstd
@preconcurrency import Glibc

/// A zstd package decompressed by libzstd straight into the decoder thread's ring slots.
///
/// libarchive's zstd filter decompresses into a buffer of its own, from which the decoder thread
/// then copied every byte into the ring: on a 1 GiB verify that copy was 11 % of the CPU, on the
/// thread that bounds the pipeline (zstd, the file's `read`s and the copy, against SHA-256 on the
/// other). Here `ZSTD_decompressStream` writes into the slot itself. What libarchive checked
/// stays checked: a stream of frames (skippable ones skipped, as libzstd and libarchive both do),
/// nothing after the last frame (libzstd refuses bytes that are not a frame; a stream that ends
/// inside a frame is refused as truncated), the window bounded by libzstd's default limit
/// (2^27), the compressed bytes consumed counted for the expansion-ratio bound. The tar reader
/// behind the ring refuses what is not tar — a second compression layer included.
/// Used by one thread at a time (the decoder thread; the owner after it is joined).
final class ZstdFileDecoder {
    static let inputSize = 256 << 10
    private let fd: Int32
    private let dctx: OpaquePointer
    private let input = UnsafeMutableRawPointer.allocate(byteCount: ZstdFileDecoder.inputSize, alignment: 64)
    private var inPos = 0, inSize = 0
    private var inputEnded = false
    /// libzstd's last hint: nonzero while a frame is not complete.
    private var inFrame = false
    /// Compressed bytes read from the file so far.
    private(set) var consumed: Int64 = 0

    /// Reads `fd` from its current offset (the start of the file).
    init(fd: Int32) throws {
        guard let d = ZSTD_createDCtx() else {
            throw CourierError(.io, "zstd: cannot allocate a decompression context")
        }
        self.fd = fd
        dctx = d
    }

    deinit {
        ZSTD_freeDCtx(dctx)
        input.deallocate()
    }

    enum Fill {
        case bytes(Int)
        case end
        case failed(String)
    }

    /// Decompresses into `out` until it is full or the stream ends: `.bytes(n)` (n > 0), `.end`
    /// once every byte of the file has been decoded and the last frame is complete.
    func fill(_ out: UnsafeMutableRawBufferPointer) -> Fill {
        var filled = 0
        while filled < out.count {
            if inPos == inSize && !inputEnded {
                let n: Int
                do { n = try Sys.read(fd, input, ZstdFileDecoder.inputSize, display: "package") } catch {
                    return .failed("reading the package: \(Sys.reason(error))")
                }
                if n == 0 {
                    inputEnded = true
                } else {
                    inPos = 0
                    inSize = n
                    consumed += Int64(n)
                }
            }
            if inputEnded && inPos == inSize {
                if inFrame {
                    return filled > 0
                        ? .bytes(filled) : .failed("damaged archive (compressed data): truncated zstd frame")
                }
                return filled > 0 ? .bytes(filled) : .end
            }
            var o = ZSTD_outBuffer(dst: out.baseAddress! + filled, size: out.count - filled, pos: 0)
            var i = ZSTD_inBuffer(src: input, size: inSize, pos: inPos)
            let r = ZSTD_decompressStream(dctx, &o, &i)
            if ZSTD_isError(r) != 0 {
                return .failed("damaged archive (compressed data): zstd: \(String(cString: ZSTD_getErrorName(r)))")
            }
            inFrame = r != 0
            inPos = i.pos
            filled += o.pos
        }
        return .bytes(filled)
    }
}
