import CourierCore

/// What a watcher tells the daemon. Deliberately little: a name to look at, or "look at
/// everything". The daemon decides what a file is by opening and verifying it; the watcher only
/// says when a name is worth looking at.
public enum WatchSignal: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A candidate package name (see `InboxNames.isCandidate`) that was closed after writing or
    /// moved into the inbox: it is complete as far as the writer is concerned. It may be gone by
    /// the time the daemon looks; that is not an error.
    case file(String)
    /// A candidate name that was created (IN_CREATE) without being written by this event: a
    /// hard link (`ln`, `cp -l`), a symbolic link, a FIFO — or a copier that just opened its
    /// file and is still writing. The daemon takes it only if nobody holds it open for writing.
    case created(String)
    /// List the inbox and consider every candidate in it: sent at start-up (what arrived while the
    /// daemon was down), after the kernel dropped events (`IN_Q_OVERFLOW`), and when the inbox
    /// directory reappeared after being deleted or moved. The reason is for the log.
    case rescan(String)

    public var description: String {
        switch self {
        case .file(let name): return "file '\(name)'"
        case .created(let name): return "created '\(name)'"
        case .rescan(let reason): return "rescan (\(reason))"
        }
    }
}

/// The interface both watchers share, so the daemon picks one (`--poll` or not) and then treats
/// them alike.
public protocol InboxWatching: AnyObject, Sendable {
    /// Why the watcher ended on its own; nil while running and after `stop()`.
    var failure: CourierError? { get }
    /// The next signal (the first is a `.rescan`): blocks the calling thread until a signal, the
    /// deadline (nanoseconds of CLOCK_MONOTONIC; nil waits for ever), or the end — after `stop()`
    /// or a failure (see `failure`). One consumer.
    func nextSignal(deadlineNanos: UInt64?) -> WatchNext
    /// Ends the signals and releases the watcher's thread and descriptors. Idempotent, bounded time.
    func stop()
}

/// What a blocking wait on a watcher ended with.
public enum WatchNext: Sendable, Equatable {
    case signal(WatchSignal)
    /// The deadline passed first.
    case timeout
    /// `stop()` was called, or the watcher failed (see `failure`).
    case ended
}

/// Which inbox names are packages to look at. Copiers write under a temporary name and rename
/// (rsync `.name.XXXXXX`, Ansible `.ansible_tmp…`, courier-deliver's own dot-names), or write in
/// place with a suffix (`.partial`, `.tmp`), and editors leave `~` and `.swp` files. Acting on any
/// of those would verify, and quarantine, a half-written file.
public enum InboxNames {
    /// The suffix of package files.
    public static let packageSuffix = ".cpkg"

    /// Temporary-file suffixes that never name a package, even in front of something else.
    static let temporarySuffixes = [".partial", ".part", ".tmp", "~", ".swp", ".swx"]

    /// True for a name worth looking at: ends in `.cpkg` with something before it, does not start
    /// with a dot, contains no `/`, NUL or control character, is at most 255 bytes (NAME_MAX), and
    /// does not end in a temporary suffix. Pure.
    public static func isCandidate(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        guard bytes.first != UInt8(ascii: ".") else { return false }  // dot-files: copier temporaries
        for b in bytes where b == UInt8(ascii: "/") || b < 0x20 || b == 0x7f { return false }
        for suffix in temporarySuffixes where name.hasSuffix(suffix) { return false }
        return name.hasSuffix(packageSuffix) && bytes.count > packageSuffix.utf8.count
    }

    /// Raw-bytes form for names straight from the kernel: a name that is not UTF-8 is never a
    /// candidate (no package name Courier writes is).
    public static func isCandidate(bytes: [UInt8]) -> Bool {
        guard let name = String(validating: bytes, as: UTF8.self) else { return false }
        return isCandidate(name)
    }
}
