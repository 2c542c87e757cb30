import CourierCore
import CourierFetch

extension Updater {
    /// What `downloadTargets` did with one target.
    public enum Obtained: Sendable {
        /// Downloaded, verified and stored at this path.
        case stored(String)
        /// Already in the target directory with matching length and hashes: not fetched.
        case present(String)

        public var path: String {
            switch self {
            case .stored(let p), .present(let p): p
            }
        }
    }

    /// Every target of `paths`, in order, with this one updater: found in the metadata
    /// (following delegations), taken from the target directory when it is already there with
    /// matching hashes, else downloaded, verified and stored — the conformance CLI's `download`.
    ///
    /// Small targets (up to `config.targetInMemoryMax`) are fetched up to `window` at a time:
    /// one request after another on one connection costs this client ~0.5 ms of round trips and
    /// thread hand-offs per target, which overlap when several are in flight. What the caller
    /// sees is still strictly sequential:
    /// - targets are stored, and `each(path, target, obtained)` is called, in argument order;
    /// - the first failure in argument order is the one thrown, and nothing after it is stored
    ///   or reported (a later target may already have been fetched; it is discarded);
    /// - no metadata is requested, and no large target streamed, while an earlier target is
    ///   still in flight: every download before it is finished (and stored) first, so the
    ///   metadata requests are python-tuf's, in python-tuf's order.
    ///
    /// `check(path, target)` runs on each target found, before it is fetched (a caller's own
    /// bounds); a path no role lists throws `.source`. Memory: at most `window` small targets.
    public func downloadTargets(
        _ paths: [String], window: Int = 8,
        check: (String, FoundTarget) throws -> Void = { _, _ in },
        each: @escaping (String, FoundTarget, Obtained) throws -> Void
    ) async throws {
        let flight = InFlight(self, each)
        do {
            for path in paths {
                let found: FoundTarget?
                do {
                    found = try await targetInfo(path, beforeLoading: { try await flight.finish() })
                } catch {
                    try await flight.finish()  // an earlier target's failure comes first
                    throw error
                }
                guard let target = found else {
                    try await flight.finish()
                    throw CourierError(
                        .source, "target \(Escape.quoted(path)) is not in the repository's targets metadata")
                }
                do { try check(path, target) } catch {
                    try await flight.finish()
                    throw error
                }
                let dest = try localPath(for: target)
                // The same file asked for twice: the second is judged on what the first stored.
                if flight.holds(dest) { try await flight.finish() }
                if let hit = findCachedTarget(target, at: dest) {
                    try await flight.finish()
                    try each(path, target, .present(hit))
                    continue
                }
                guard target.file.length <= Int64(config.targetInMemoryMax), window > 1 else {
                    try await flight.finish()
                    try each(path, target, .stored(try await downloadTarget(target, to: dest)))
                    continue
                }
                let url = try targetURL(for: target)
                _ = try prepareDestination(dest)
                let (file, fetcher) = (target.file, self.fetcher)
                flight.add(path, target, dest, Task { try await Updater.fetchVerified(file, url, fetcher) })
                while flight.count >= window { try await flight.finishOne() }
            }
            try await flight.finish()
        } catch {
            await flight.abandon()
            throw error
        }
    }
}

/// The small targets `downloadTargets` has asked for and not stored yet, oldest first.
private final class InFlight {
    struct Entry {
        let path: String
        let target: FoundTarget
        let dest: String
        let task: Task<[UInt8], Error>
    }

    private let updater: Updater
    private let each: (String, FoundTarget, Updater.Obtained) throws -> Void
    private var entries: [Entry] = []
    private var head = 0
    /// Destinations in flight, as bytes (two names Swift deems equal may be two files).
    private var dests: Set<[UInt8]> = []

    init(_ updater: Updater, _ each: @escaping (String, FoundTarget, Updater.Obtained) throws -> Void) {
        self.updater = updater
        self.each = each
    }

    var count: Int { entries.count - head }

    func holds(_ dest: String) -> Bool { dests.contains(Array(dest.utf8)) }

    func add(_ path: String, _ target: FoundTarget, _ dest: String, _ task: Task<[UInt8], Error>) {
        entries.append(Entry(path: path, target: target, dest: dest, task: task))
        dests.insert(Array(dest.utf8))
    }

    /// Waits for the oldest, stores it and reports it. (Files are written here, one after
    /// another, not in the tasks: measured as fast, and two threads creating files in one
    /// ext4 directory spin on its lock.)
    func finishOne() async throws {
        let e = entries[head]
        let bytes = try await e.task.value
        head += 1
        dests.remove(Array(e.dest.utf8))
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        }
        try updater.store(bytes, of: e.target, at: e.dest)
        try each(e.path, e.target, .stored(e.dest))
    }

    /// Every download in flight, stored and reported in order.
    func finish() async throws {
        while count > 0 { try await finishOne() }
    }

    /// After a failure: the rest cancelled and waited for (none outlives the call, so the
    /// fetcher can be shut down), their bytes dropped.
    func abandon() async {
        for e in entries[head...] { e.task.cancel() }
        for e in entries[head...] { _ = try? await e.task.value }
        entries.removeAll()
        head = 0
        dests.removeAll()
    }
}
