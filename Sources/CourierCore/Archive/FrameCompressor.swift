import CZstd
@preconcurrency import Glibc

/// zstd on several threads of our own: the tar stream is cut into 4 MiB chunks, each compressed
/// as a zstd frame of its own by one of `workers` threads, and the frames are written to the file
/// in order. A sequence of frames is one zstd stream (RFC 8878; FORMAT §1), which libarchive,
/// libzstd and Python's zstandard (`read_across_frames`) read as such.
///
/// Why not libzstd's own workers (`ZSTD_c_nbWorkers`, libarchive's `zstd:threads`): the static
/// libzstd.a that `make release` links is built without multithreading (Debian's is), and there
/// the parameter is refused — silently, through libarchive. This does not depend on how libzstd
/// was built. The cost: matches do not cross a chunk boundary (the 2 MiB window of level 3 is
/// already smaller than a chunk), a few hundred bytes per GiB.
///
/// The calling thread (reading and hashing files, formatting tar) hands chunks over and writes
/// finished frames; at most `workers + 2` chunks are in flight, and their buffers are reused
/// (allocating 4 MiB per chunk cost a GiB build 250 MiB of RSS and a second of page faults).
final class FrameCompressor: @unchecked Sendable {
    // @unchecked Sendable, and why that is true: `queue`, `done`, `stopping` and `failure` are read
    // and written only with `mutex` held; a chunk's memory belongs to the caller until it is
    // queued, to one worker until it is put in `done`, and to the caller again after; each
    // hand-over happens under the mutex.
    static let chunkSize = 4 << 20
    /// Most bytes of tar per byte of frame written for any frame but the last (see `pad`).
    static let maxFrameRatio = 250

    private struct Job {
        var seq: Int
        var input: UnsafeMutableRawPointer
        var count: Int
    }
    private struct Frame {
        var input: UnsafeMutableRawPointer
        var output: UnsafeMutableRawPointer?
        var count: Int
        var inputCount: Int
    }

    private let fd: Int32
    private let display: String
    private let level: Int32
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [Job] = []
    private var done: [Int: Frame] = [:]
    private var stopping = false
    private var failure: String? = nil
    private var threads: [pthread_t] = []
    private let maxInFlight: Int
    /// Output buffers (ZSTD_compressBound of a chunk) not in use; guarded by `mutex`.
    private var spareOutputs: [UnsafeMutableRawPointer] = []
    private let outputSize = ZSTD_compressBound(FrameCompressor.chunkSize)
    /// Input chunks not in use; the caller's side only.
    private var spareInputs: [UnsafeMutableRawPointer] = []

    // The caller's side only.
    private var current: UnsafeMutableRawPointer? = nil
    private var fill = 0
    private var nextSeq = 0
    private var nextToWrite = 0
    /// The first error, for the caller (libarchive only sees "write failed").
    private(set) var error: CourierError? = nil

    init(fd: Int32, display: String, level: Int, workers: Int) throws {
        self.fd = fd
        self.display = display
        self.level = Int32(level)
        maxInFlight = workers + 2
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
        for _ in 0..<max(workers, 1) {
            do { threads.append(try Threads.start(stackBytes: 256 << 10) { [self] in self.work() }) } catch {
                stop()
                throw error
            }
        }
    }

    deinit {
        stop()
        pthread_cond_destroy(changed)
        changed.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        current?.deallocate()
    }

    /// Stops the workers and frees what is still queued or done. Idempotent.
    private func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
        for t in threads { pthread_join(t, nil) }
        threads = []
        for j in queue { j.input.deallocate() }
        queue = []
        for (_, f) in done {
            f.input.deallocate()
            f.output?.deallocate()
        }
        done = [:]
        for b in spareOutputs { b.deallocate() }
        spareOutputs = []
        for b in spareInputs { b.deallocate() }
        spareInputs = []
    }

    /// Takes the next bytes of the tar stream (libarchive's write callback).
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            if current == nil {
                current =
                    spareInputs.popLast()
                    ?? UnsafeMutableRawPointer.allocate(byteCount: FrameCompressor.chunkSize, alignment: 64)
                fill = 0
            }
            let take = min(bytes.count - off, FrameCompressor.chunkSize - fill)
            (current! + fill).copyMemory(from: bytes.baseAddress! + off, byteCount: take)
            fill += take
            off += take
            if fill == FrameCompressor.chunkSize { try submit() }
        }
    }

    /// Compresses what is left and writes every frame. The caller fsyncs.
    func finish() throws {
        if current != nil && fill > 0 { try submit() }
        try drain(until: nextSeq)
        stop()
    }

    private func submit() throws {
        let job = Job(seq: nextSeq, input: current!, count: fill)
        current = nil
        fill = 0
        nextSeq += 1
        pthread_mutex_lock(mutex)
        queue.append(job)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
        // Keep at most maxInFlight chunks between here and the file.
        try drain(until: nextSeq - maxInFlight)
    }

    /// Writes frames in order until `seq` (exclusive) is written, waiting for the workers.
    private func drain(until seq: Int) throws {
        while nextToWrite < seq {
            pthread_mutex_lock(mutex)
            while done[nextToWrite] == nil && failure == nil { pthread_cond_wait(changed, mutex) }
            let why = failure
            let frame = done.removeValue(forKey: nextToWrite)
            pthread_mutex_unlock(mutex)
            if let why {
                if let f = frame {
                    f.input.deallocate()
                    f.output?.deallocate()
                }
                throw fail(why)
            }
            guard let f = frame, let out = f.output else { throw fail("zstd worker lost a chunk") }
            defer {
                spareInputs.append(f.input)
                pthread_mutex_lock(mutex)
                spareOutputs.append(out)
                pthread_mutex_unlock(mutex)
            }
            do {
                try Sys.writeAll(fd, UnsafeRawBufferPointer(start: out, count: f.count), display: display)
                if nextToWrite < nextSeq - 1 { try pad(frame: f.count, tar: f.inputCount) }
            } catch let e as CourierError {
                error = e
                throw e
            }
            nextToWrite += 1
        }
    }

    /// Readers bound the expansion ratio of the stream as they read (Limits.maxExpansionRatio,
    /// 1000 by default), so a package of very repetitive files must not look like a compression
    /// bomb: a frame that expands more than `maxFrameRatio` times is followed by a zstd skippable
    /// frame (magic 0x184D2A50, FORMAT §1: allowed between frames) that brings it to that ratio.
    /// Never after the last frame, so nothing follows the stream. Costs nothing on real content
    /// (1.4:1 to 5:1); at most 16 KiB per 4 MiB of zeros.
    private func pad(frame: Int, tar: Int) throws {
        let want = tar / FrameCompressor.maxFrameRatio
        guard frame < want else { return }
        let body = max(want - frame - 8, 0)
        var skip = [UInt8](repeating: 0, count: 8 + body)
        skip[0] = 0x50
        skip[1] = 0x2a
        skip[2] = 0x4d
        skip[3] = 0x18
        for k in 0..<4 { skip[4 + k] = UInt8(truncatingIfNeeded: UInt32(body) >> (8 * UInt32(k))) }
        try skip.withUnsafeBytes { try Sys.writeAll(fd, $0, display: display) }
    }

    private func fail(_ why: String) -> CourierError {
        let e = CourierError(.io, "\(display): zstd: \(why)")
        if error == nil { error = e }
        return e
    }

    /// A worker: one compression context, reused for every chunk it takes.
    private func work() {
        guard let cctx = ZSTD_createCCtx() else {
            pthread_mutex_lock(mutex)
            failure = failure ?? "cannot allocate a compression context"
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
            return
        }
        defer { ZSTD_freeCCtx(cctx) }
        while true {
            pthread_mutex_lock(mutex)
            while queue.isEmpty && !stopping { pthread_cond_wait(changed, mutex) }
            if stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            let job = queue.removeFirst()
            let spare = spareOutputs.popLast()
            pthread_mutex_unlock(mutex)

            let out = spare ?? UnsafeMutableRawPointer.allocate(byteCount: outputSize, alignment: 64)
            let n = ZSTD_compressCCtx(cctx, out, outputSize, job.input, job.count, level)
            pthread_mutex_lock(mutex)
            if ZSTD_isError(n) != 0 {
                out.deallocate()
                failure = failure ?? String(cString: ZSTD_getErrorName(n))
                done[job.seq] = Frame(input: job.input, output: nil, count: 0, inputCount: job.count)
            } else {
                done[job.seq] = Frame(input: job.input, output: out, count: n, inputCount: job.count)
            }
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
        }
    }
}
