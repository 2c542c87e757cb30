import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox
@preconcurrency import Glibc

public struct StatusCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what this client holds: revision, content age, pins, pending packages, last error.")

    @Option(help: ArgumentHelp("The configuration file.", valueName: "FILE"))
    var config: String = "/etc/courier/inboxd.toml"
    @Flag(help: "Print status.json as it is (the schema in docs/INBOXD.md).")
    var json = false

    public init() {}

    public func run() throws {
        try mapErrors("courier-inboxd status") {
            let cfg = try InboxConfig.load(config)
            let files = try StateFiles(dir: cfg.stateDir)
            guard let s = files.readStatus() else {
                throw CourierError(.io, "\(files.statusPath): no status yet; has courier-inboxd run?")
            }
            // The file as it is (it may carry the daemon's `retrying` marker, which ClientStatus drops).
            if json {
                print(
                    String(decoding: (try? Sys.readFile(files.statusPath)) ?? s.encoded(), as: UTF8.self),
                    terminator: "")
                return
            }
            let now = Int64(time(nil))
            print("host \(Escape.text(s.host)), status of \(Escape.text(s.updated))")
            for (t, ts) in s.types.sorted(by: { $0.key < $1.key }) {
                let age = ts.contentCreated.flatMap(RFC3339.parse).map { humanAge(now - $0) } ?? "-"
                var line = "\(t): \(ts.installed.map(String.init) ?? "nothing installed")"
                if let p = ts.previous { line += " (previous \(p))" }
                line += ", content age \(age)"
                if let pin = ts.pinned { line += ", PINNED to \(pin)" }
                print(line)
                if !ts.pending.isEmpty { print("    pending: \(ts.pending.map(Escape.text).joined(separator: ", "))") }
                if let e = ts.lastError {
                    print("    last error \(e.at): \(Escape.text(e.package)): \(Escape.line(e.reason))")
                }
                // Senders skip these until --force or a newer revision applies (docs/INBOXD.md).
                for r in ts.refused ?? [] {
                    print("    refused \(r.revision) \(r.at) (\(Escape.text(r.code))): \(Escape.line(r.reason))")
                }
            }
            if let q = s.quarantine {
                print(
                    "quarantine: \(q.files) file\(q.files == 1 ? "" : "s"), \(q.bytes) bytes\(q.evicted > 0 ? ", \(q.evicted) evicted by its caps so far" : "")"
                )
            }
        }
    }
}

/// Shared by rollback, pin and unpin: they change state under the daemon's lock.
struct StateChange {
    let cfg: InboxConfig
    init(_ path: String) throws { cfg = try InboxConfig.load(path) }
    func withLock<T>(_ body: (StateFiles, Store) throws -> T) throws -> T {
        try StateLock.with(cfg.stateDir) { try body(try StateFiles(dir: cfg.stateDir), Store(root: cfg.store)) }
    }
}

public struct PinCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Accept only this revision of a type (the endpoint manager's \"named version\"), even an older one.")
    @Option(help: ArgumentHelp("The configuration file.", valueName: "FILE")) var config: String =
        "/etc/courier/inboxd.toml"
    @Option(help: "Content type.") var type: String
    @Option(help: "Revision to hold.") var revision: UInt64
    public init() {}
    public func run() throws {
        try mapErrors("courier-inboxd pin") {
            try StateChange(config).withLock { files, _ in
                var pins = try files.readPins()
                pins[type] = revision
                try files.writePins(pins)
                if var s = files.readStatus() {
                    s.types[type, default: .init()].pinned = revision
                    s.updated = RFC3339.format(Int64(time(nil)))
                    try files.writeStatus(s)
                }
            }
            print(
                "\(type) pinned to \(revision): only that revision will be applied (courier-inboxd unpin --type \(type) to resume updates)"
            )
        }
    }
}

public struct UnpinCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "unpin", abstract: "Remove a type's pin: newer revisions are applied again.")
    @Option(help: ArgumentHelp("The configuration file.", valueName: "FILE")) var config: String =
        "/etc/courier/inboxd.toml"
    @Option(help: "Content type.") var type: String
    public init() {}
    public func run() throws {
        try mapErrors("courier-inboxd unpin") {
            try StateChange(config).withLock { files, _ in
                var pins = try files.readPins()
                pins[type] = nil
                try files.writePins(pins)
                if var s = files.readStatus() {
                    s.types[type]?.pinned = nil
                    s.updated = RFC3339.format(Int64(time(nil)))
                    try files.writeStatus(s)
                }
            }
            print("\(type) unpinned")
        }
    }
}

public struct RollbackCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Switch a type back to a kept revision (default: the previous one) and pin it there.",
        discussion: """
            Nothing is downloaded: rollback uses a revision still \
            in the store (see 'keep' in the configuration). The type is pinned to it, so the newer \
            revision is not applied again when it is delivered; 'unpin' resumes updates.
            """)
    @Option(help: ArgumentHelp("The configuration file.", valueName: "FILE")) var config: String =
        "/etc/courier/inboxd.toml"
    @Option(help: "Content type.") var type: String
    @Option(help: "Revision to go back to (default: the newest kept revision below the installed one).") var to: UInt64?
    public init() {}
    public func run() throws {
        try mapErrors("courier-inboxd rollback") {
            let change = try StateChange(config)
            let target: UInt64 = try change.withLock { files, store in
                guard let cur = store.current(type) else { throw CourierError(.usage, "\(type): nothing installed") }
                let kept = try store.revisions(type).filter { $0 != cur }
                // "(kept: 3, 5)", or "(no other revision kept)" rather than an empty list.
                let keptText =
                    kept.isEmpty
                    ? "no other revision kept" : "kept: \(kept.map(String.init).joined(separator: ", "))"
                guard let target = to ?? kept.filter({ $0 < cur }).last else {
                    throw CourierError(
                        .usage, "\(type): no earlier revision kept in \(store.typeDir(type)) (\(keptText))")
                }
                guard kept.contains(target) else {
                    throw CourierError(.usage, "\(type): revision \(target) is not in the store (\(keptText))")
                }
                // Never switch to a tree that is not exactly what was applied.
                try store.checkRevision(type, target, limits: change.cfg.limits)
                try store.switchCurrent(type, to: target)
                var pins = try files.readPins()
                pins[type] = target
                try files.writePins(pins)
                var s = files.readStatus() ?? .empty(host: "")
                var ts = s.types[type] ?? .init()
                ts.previous = cur
                ts.installed = target
                ts.pinned = target
                ts.appliedAt = RFC3339.format(Int64(time(nil)))
                s.types[type] = ts
                s.updated = ts.appliedAt ?? s.updated
                try files.writeStatus(s)
                files.appendHistory(
                    .init(
                        at: RFC3339.format(Int64(time(nil))), type: type, event: "rolled-back", revision: target,
                        previous: cur))
                if let tc = change.cfg.typeConfig(type), let cmd = tc.applyCommand {
                    let out = try CommandRunner.run(
                        cmd,
                        environment: [
                            "COURIER_TYPE": type, "COURIER_REVISION": String(target),
                            "COURIER_PATH": store.revisionDir(type, target), "COURIER_PREVIOUS_REVISION": String(cur),
                        ], timeout: tc.applyTimeout)
                    if !out.ok {
                        throw CourierError(
                            .applyFailed,
                            "switched to \(target), but the apply command exited \(out.status): \(out.output)")
                    }
                }
                return target
            }
            print(
                "\(type) rolled back to \(target) and pinned there (courier-inboxd unpin --type \(type) to resume updates)"
            )
        }
    }
}
