import CCourierShim
import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// One outbox package opened once for all its copies of a push: a descriptor (for reflink and
/// `copy_file_range`) and a read-only mapping of its bytes (for direct I/O). Shared by the copy
/// threads, so nothing here uses the descriptor's file position.
public final class PackageSource: @unchecked Sendable {
    // @unchecked Sendable, and why that is true: every property is a `let` set in `init` and never
    // changed. `map` (a raw pointer, hence not Sendable to the compiler) is a PROT_READ mapping
    // that lives until `deinit`, so threads only read it; `fd` is used only by calls that take an
    // offset or none (`pwrite` from the mapping, FICLONE, `reopen` for a position of its own).
    public let path: String
    public let size: Int64
    let map: UnsafeRawPointer?
    /// Closed when the source goes, after `deinit` has unmapped the file.
    private let owner: OwnedFD

    /// The descriptor, valid while this source lives (callers keep the source, not the number).
    public var fd: Int32 { owner.raw }

    public init(path: String) throws {
        let fd = try OwnedFD.open(path, O_RDONLY | O_CLOEXEC)  // closed here if a step below fails
        size = Int64(try Sys.fstat(fd.raw, display: path).st_size)
        if size > 0 {
            map = try Sys.mapReadOnly(fd.raw, size: Int(size), display: path)
        } else {
            map = nil
        }
        self.path = path
        self.owner = fd
    }

    deinit {
        if let map { Sys.unmap(map, size: Int(size)) }
    }

    /// Below this, a copy goes through the page cache: direct I/O pays off for large files only.
    static let directMinimum: Int64 = 1 << 20
    /// One direct write: large enough for the disk to stream, small enough that eight threads
    /// keep several in flight.
    static let directChunk = 8 << 20
    /// One write through the page cache (see `writeCached`).
    static let cachedChunk = 1 << 20
    /// File systems on which O_DIRECT goes from our memory straight to a local disk. Elsewhere
    /// (NFS and SMB, where `copy_file_range` is a server-side copy; tmpfs, which has no disk;
    /// FUSE, overlayfs) the copy stays with `TreeCopier.copyData`.
    static let directFileSystems: Set<Int64> = [
        0xEF53,  // ext2, ext3, ext4
        0x5846_5342,  // xfs
        0x9123_683E,  // btrfs
        0xF2F5_2010,  // f2fs
    ]

    /// Writes the whole package into `ofd` (a new, empty file at `dst`) and says how: "reflink",
    /// "direct I/O", "the page cache", or what `TreeCopier.copyData` used.
    ///
    /// Unless it can share extents (reflink), the copy first reserves its blocks (`fallocate`):
    /// a disk without room for it fails the copy at once, with ENOSPC and nothing half-written,
    /// and writes into reserved blocks skip ext4's delayed allocation — 10 copies of 96 MiB
    /// through the page cache took 0.19 s with `copy_file_range` into unreserved files (as
    /// `cp` does) and 0.14 s into reserved ones; `pwrite` from the mapping into reserved files,
    /// two threads at a time, 0.12 s with half cp's system time (medians of 6, this machine).
    ///
    /// `cache`: nil for a durable push (direct I/O wherever it applies). For `--no-sync`, the
    /// `CacheBudget` that sends some copies through the page cache and some by direct I/O.
    ///
    /// Why direct I/O: push must make every copy durable before its rename, and a copy through
    /// the page cache is written twice over — a memcpy into dirty pages, then the flush — and,
    /// past the kernel's dirty limit (a few GiB), the writers are throttled to the disk's speed
    /// anyway while the copies push useful pages out of the cache. Written with O_DIRECT from
    /// the mapping of the source (its pages read into the cache once, for all copies and for
    /// verification), the bytes go once, by DMA, from the source's cache pages to the disk;
    /// `syncfs` then has only metadata and the disk's write cache left to flush.
    ///
    /// `throttle` (`--bwlimit`): every byte goes through `writeThrottled`, in chunks accounted
    /// to the run's one bucket — no reflink, `copy_file_range` or direct I/O, whose bytes the
    /// cap could not pace (a reflink moves none here, but an inbox on NFS or SMB turns
    /// `copy_file_range` into one call that moves the whole file at the link's full speed).
    func copy(into ofd: Int32, dst: String, cache: CacheBudget? = nil, throttle: Throttle? = nil) throws -> String {
        if let throttle {
            try Sys.preallocate(ofd, size, display: dst)
            try writeThrottled(ofd, dst: dst, throttle: throttle)
            return "writes capped by --bwlimit"
        }
        let large = map != nil && size >= Self.directMinimum
        if large { cache?.begin() }
        if courier_ficlone(ofd, fd) == 0 { return "reflink" }
        try Sys.preallocate(ofd, size, display: dst)
        if large, Self.directFileSystems.contains(courier_fs_magic(ofd)),
            (cache?.route(size) ?? .direct) == .direct
        {
            defer { cache?.finish() }
            if courier_set_direct(ofd, 1) == 0 { return try writeDirect(ofd, dst: dst, cache: cache) }
        }
        if large, let cache {
            try cache.throughCache { try writeCached(ofd, from: 0, dst: dst) }
            return "the page cache"
        }
        // Its own descriptor (of the same file, whatever its path now names): copyData reads
        // from the file position, which threads must not share.
        let own = try owner.reopen(display: path)
        return try TreeCopier.copyData(own.raw, ofd, size: Int(size), src: path, dst: dst)
    }

    /// The direct copy from the mapping into `ofd`, which has O_DIRECT set. Direct I/O needs
    /// offsets and lengths aligned to the logical block size: 4 KiB covers every disk here; a
    /// device that wants more refuses the first write (EINVAL), and the copy then goes through
    /// the cache. The unaligned tail always does, and so does the rest of a `--no-sync` copy
    /// that `cache` moves off the disk (`CacheBudget.leaveDisk`).
    private func writeDirect(_ ofd: Int32, dst: String, cache: CacheBudget?) throws -> String {
        let map = self.map!
        let aligned = size & ~4095
        var off: Int64 = 0
        var direct = true
        while off < size {
            let end = direct ? aligned : size
            if off >= end {
                _ = courier_set_direct(ofd, 0)
                direct = false
                continue
            }
            let (n, failure) = Sys.pwriteAttempt(ofd, map + Int(off), min(Self.directChunk, Int(end - off)), at: off)
            if n > 0 {
                off += Int64(n)
                // A short direct write leaves an unaligned offset: finish through the cache.
                if direct && off & 4095 != 0 {
                    _ = courier_set_direct(ofd, 0)
                    direct = false
                }
                if direct, off < aligned, let cache, cache.leaveDisk(remaining: size - off) {
                    _ = courier_set_direct(ofd, 0)
                    try cache.throughCache { try writeCached(ofd, from: off, dst: dst) }
                    return "direct I/O, then the page cache"
                }
                continue
            }
            let e = failure?.rawValue ?? 0
            if n < 0 && direct && e == EINVAL {
                _ = courier_set_direct(ofd, 0)
                direct = false
                continue
            }
            if n == 0 { throw CourierError(.io, "\(dst): write returned 0 bytes at offset \(off)") }
            // EFAULT: the source shrank under its mapping (an outbox package must not change).
            throw CourierError.io("write (copy of \(path))", path: dst, errno: Errno(rawValue: e))
        }
        if direct { _ = courier_set_direct(ofd, 0) }
        return "direct I/O"
    }

    /// One write under a cap: an eighth of a second of the rate (from 16 KiB to 1 MiB), so that
    /// the pauses between writes are short and the copies of parallel inboxes interleave.
    static func throttledChunk(_ t: Throttle) -> Int {
        min(1 << 20, max(16 << 10, Int(t.bytesPerSecond / 8)))
    }

    /// The whole copy through the page cache from the mapping, each write accounted to
    /// `throttle` (which then sleeps this thread as long as the run's rate requires).
    private func writeThrottled(_ ofd: Int32, dst: String, throttle: Throttle) throws {
        let chunk = Self.throttledChunk(throttle)
        var off: Int64 = 0
        while off < size {
            let (n, failure) = Sys.pwriteAttempt(ofd, map! + Int(off), min(chunk, Int(size - off)), at: off)
            if n > 0 {
                off += Int64(n)
                throttle.pause(after: n)
                continue
            }
            if n == 0 { throw CourierError(.io, "\(dst): write returned 0 bytes at offset \(off)") }
            throw CourierError.io("write (copy of \(path))", path: dst, errno: failure ?? Errno(rawValue: EIO))
        }
    }

    /// The copy from `start` on through the page cache, written from the mapping, at most one
    /// per CPU at a time (`CacheBudget.throughCache`).
    ///
    /// In writes of 1 MiB: the page cache gives a write folios as large as the write (up to
    /// 2 MiB), and on a virtual machine whose balloon driver reports free 2 MiB blocks to the
    /// host (free page reporting, as here), a fresh 2 MiB folio costs a fault on the host at
    /// first touch. 10 copies of 96 MiB right after other files were deleted: 8 MiB writes
    /// 0.97–1.29 s, 1 MiB writes 0.10–0.11 s, 64 KiB 0.12–0.14 s (four runs each).
    private func writeCached(_ ofd: Int32, from start: Int64, dst: String) throws {
        var off = start
        while off < size {
            let (n, failure) = Sys.pwriteAttempt(ofd, map! + Int(off), min(Self.cachedChunk, Int(size - off)), at: off)
            if n > 0 {
                off += Int64(n)
                continue
            }
            if n == 0 { throw CourierError(.io, "\(dst): write returned 0 bytes at offset \(off)") }
            // EFAULT: the source shrank under its mapping (an outbox package must not change).
            throw CourierError.io("write (copy of \(path))", path: dst, errno: failure ?? Errno(rawValue: EIO))
        }
    }
}
