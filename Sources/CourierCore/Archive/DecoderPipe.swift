import CArchive
@preconcurrency import Glibc
import Synchronization

/// Decompression on a thread of its own, ahead of the tar reader: the decoder thread fills a
/// small ring of fixed buffers with decompressed bytes, and the reading thread (tar headers,
/// SHA-256, the caller's writes) takes them in order. On two cores zstd and SHA-256 then run at
/// the same time instead of one after the other (docs/ARCHITECTURE.md, "Pipelined reader").
///
/// Memory is the ring (`slotCount` × `slotSize`), whatever the package size: the decoder thread
/// waits when every slot is full, so a compression bomb is never decompressed further ahead than
/// that. One producer, one consumer; the consumer holds at most one slot at a time (the one it
/// last returned, which libarchive may still read until it asks for the next).
final class DecoderPipe: @unchecked Sendable {
    // @unchecked Sendable, and why that is true: every `var` below is read and written only with
    // `mutex` held. A slot's bytes belong to one side at a time — the decoder thread writes slot
    // `writeIndex` only while it is neither ready nor lent; the reading thread reads a slot only
    // between taking it and returning it — and each hand-over happens under the mutex, which
    // orders the memory accesses. `decoder` (a libarchive handle, not thread-safe) is used by the
    // decoder thread alone from `start()` until `stop()` has joined it, and by the owner after.
    static let slotCount = 3
    static let slotSize = 512 << 10

    enum End {
        case eof
        case failed(String)
    }

    /// libarchive's decoder (gzip, plain tar), or nil when libzstd decodes into the ring itself.
    let decoder: OpaquePointer?
    private let zstd: ZstdFileDecoder?
    /// Compressed bytes the decoder has consumed so far (for the expansion-ratio bound).
    let compressedBytes = Atomic<Int64>(0)

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let dataReady = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let spaceFree = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let memory = UnsafeMutableRawPointer.allocate(
        byteCount: DecoderPipe.slotCount * DecoderPipe.slotSize, alignment: 64)
    private let sizes = UnsafeMutablePointer<Int>.allocate(capacity: DecoderPipe.slotCount)

    // Guarded by `mutex`.
    private var ready = 0
    private var lent = false
    private var cancelled = false
    private var end: End? = nil
    private var thread: pthread_t? = nil
    // Each touched by one side only (reader: readIndex; decoder thread: writeIndex).
    private var readIndex = 0
    private var writeIndex = 0

    init(decoder: OpaquePointer) {
        self.decoder = decoder
        zstd = nil
        self.init2()
    }
    init(zstd: ZstdFileDecoder) {
        decoder = nil
        self.zstd = zstd
        self.init2()
    }

    /// Frees libarchive's decoder, if any (after `stop`: the thread used it until joined).
    func freeDecoder() { if let decoder { archive_read_free(decoder) } }

    /// Compressed bytes of the file consumed by the decoder, once the thread is joined.
    var consumedAfterStop: Int64 { zstd?.consumed ?? archive_filter_bytes(decoder!, -1) }

    private func init2() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(dataReady, nil)
        pthread_cond_init(spaceFree, nil)
    }

    deinit {
        stop()
        pthread_cond_destroy(spaceFree)
        spaceFree.deallocate()
        pthread_cond_destroy(dataReady)
        dataReady.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        sizes.deallocate()
        memory.deallocate()
    }

    /// Starts the decoder thread.
    func start() throws {
        // Small stack: the loop needs little; libzstd and zlib keep their state on the heap.
        let t = try Threads.start(stackBytes: 512 << 10) { [self] in self.produce() }
        locked { thread = t }
    }

    /// Stops the decoder thread (at its next slot) and waits for it. Idempotent.
    func stop() {
        let t: pthread_t? = locked {
            cancelled = true
            pthread_cond_broadcast(spaceFree)
            defer { thread = nil }
            return thread
        }
        if let t { pthread_join(t, nil) }
    }

    /// The next block of decompressed bytes, in order: its size, with `out` set to it (valid
    /// until the next call); 0 at the end of the stream; -1 with `error` set on a decoder error.
    /// Returns the previous block to the decoder thread.
    func next(_ out: UnsafeMutablePointer<UnsafeRawPointer?>, error: inout String?) -> Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if lent {
            lent = false
            readIndex = (readIndex + 1) % DecoderPipe.slotCount
            pthread_cond_signal(spaceFree)
        }
        while ready == 0 && end == nil { pthread_cond_wait(dataReady, mutex) }
        if ready > 0 {
            ready -= 1
            lent = true
            out.pointee = UnsafeRawPointer(memory + readIndex * DecoderPipe.slotSize)
            return sizes[readIndex]
        }
        switch end! {
        case .eof: return 0
        case .failed(let why):
            error = why
            return -1
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The decoder thread: fill free slots until the stream ends, fails, or the reader stops.
    private func produce() {
        var pending: UnsafeRawPointer? = nil
        var pendingCount = 0
        var finished: End? = nil
        while finished == nil {
            // Wait for a slot that is neither ready nor lent.
            let go: Bool = locked {
                while !cancelled && ready + (lent ? 1 : 0) == DecoderPipe.slotCount {
                    pthread_cond_wait(spaceFree, mutex)
                }
                return !cancelled
            }
            if !go { return }
            let base = memory + writeIndex * DecoderPipe.slotSize
            var filled = 0
            if let zstd {
                switch zstd.fill(UnsafeMutableRawBufferPointer(start: base, count: DecoderPipe.slotSize)) {
                case .bytes(let n): filled = n
                case .end: finished = .eof
                case .failed(let why): finished = .failed(why)
                }
                compressedBytes.store(zstd.consumed, ordering: .relaxed)
            }
            while zstd == nil && filled < DecoderPipe.slotSize {
                if pendingCount == 0 {
                    var buf: UnsafeRawPointer? = nil
                    var size = 0
                    var offset: Int64 = 0
                    let r = archive_read_data_block(decoder!, &buf, &size, &offset)
                    compressedBytes.store(archive_filter_bytes(decoder!, -1), ordering: .relaxed)
                    if r == ARCHIVE_EOF {
                        finished = .eof
                        break
                    }
                    guard r == ARCHIVE_OK else {
                        finished = .failed("damaged archive (compressed data): \(ArchiveReader.errorString(decoder!))")
                        break
                    }
                    pending = buf
                    pendingCount = size
                    if size == 0 { continue }
                }
                let take = min(pendingCount, DecoderPipe.slotSize - filled)
                (base + filled).copyMemory(from: pending!, byteCount: take)
                pending = pending! + take
                pendingCount -= take
                filled += take
            }
            locked {
                if filled > 0 {
                    sizes[writeIndex] = filled
                    writeIndex = (writeIndex + 1) % DecoderPipe.slotCount
                    ready += 1
                }
                if let f = finished { end = f }
                pthread_cond_signal(dataReady)
            }
        }
    }
}
