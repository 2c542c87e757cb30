import CourierConfig
import CourierCore

/// `inboxd.toml` (docs/INBOXD.md): where the inbox, store and state are, whom to trust, and per
/// content type how many revisions to keep and which commands test and announce new content.
/// Unknown keys and bad values are errors naming file, line and key.
public struct InboxConfig: Sendable {
    /// A command: an argv list (`["clamscan", "-d", "$COURIER_PATH"]`, no shell) or a string run
    /// by `/bin/sh -c`. `$COURIER_*` variables are in the environment either way.
    public enum Command: Sendable, Equatable {
        case argv([String])
        case shell(String)
    }

    public struct TypeConfig: Sendable {
        public var name: String
        public var keep: Int = 3
        public var testCommand: Command? = nil
        public var testTimeout: Int64 = 300
        public var applyCommand: Command? = nil
        public var applyTimeout: Int64 = 120
        /// When the apply command fails: switch back to the previous revision and quarantine
        /// (true, the default), or keep the new content and only record the error.
        public var rollbackOnApplyFailure = true
        /// Hard-link unchanged files from the current tree when applying a delta (fast, but only
        /// safe when the product never writes into its content directory).
        public var hardlinkUnchanged = false
        /// Run when a package of this type is refused (quarantined), and when a transient error
        /// leaves one in the inbox or an apply command fails with the content kept (`Hooks`).
        public var onRefused: Command? = nil
        public var onError: Command? = nil
        public var hookTimeout: Int64 = 30
    }

    /// How much the quarantine may hold (`Quarantine.Caps`): never unbounded, so a revision
    /// refused again and again cannot fill the disk (freshclam issue 217's loop).
    public var quarantineCaps = Quarantine.Caps()

    public var path: String
    public var inbox: String
    public var store: String
    public var stateDir: String
    public var quarantine: String
    public var trust: String
    public var threshold = 1
    public var clockSkew: Int64 = 300
    /// How long a delta waits for its base revision before it is quarantined.
    public var deltaWait: Int64 = 600
    /// Poll the inbox every N seconds instead of inotify (NFS/SMB inboxes); 0 = inotify.
    public var poll: Int64 = 0
    /// Accept content types not listed under [types] (with default settings).
    public var acceptUnknownTypes = false
    public var types: [String: TypeConfig] = [:]
    /// `max_tree_bytes` and `delta_window` over the built-in defaults (`TableReader.limits`).
    public var limits: Limits

    public func typeConfig(_ name: String) -> TypeConfig? {
        if let t = types[name] { return t }
        return acceptUnknownTypes ? TypeConfig(name: name) : nil
    }

    public static func load(_ path: String) throws -> InboxConfig {
        try withTOMLFile(path, parse)
    }

    public static func parse(_ text: String, path: String) throws -> InboxConfig {
        try withTOML(text, path: path, parse)
    }

    static func parse(_ r: TableReader) throws -> InboxConfig {
        let path = r.path
        try r.allow([
            "inbox", "store", "state_dir", "quarantine", "trust", "threshold", "clock_skew", "delta_wait", "poll",
            "accept_unknown_types", "types", "max_tree_bytes", "delta_window",
            "quarantine_max_files", "quarantine_max_bytes", "quarantine_max_age",
        ])
        guard
            let stateDir = try r.string("state_dir").map(r.resolve)
                ?? (try r.string("inbox")).map({ r.resolve($0 + "/../state") })
        else {
            throw r.error(nil, "needs 'inbox' (the directory copiers deliver into)")
        }
        guard let inbox = try r.string("inbox") else {
            throw r.error(nil, "needs 'inbox' (the directory copiers deliver into)")
        }
        guard let trust = try r.string("trust") else {
            throw r.error(nil, "needs 'trust' (a .pub file or a directory of them)")
        }
        var c = InboxConfig(
            path: path, inbox: r.resolve(inbox), store: r.resolve(try r.string("store") ?? stateDir + "/store"),
            stateDir: stateDir, quarantine: r.resolve(try r.string("quarantine") ?? stateDir + "/quarantine"),
            trust: r.resolve(trust), limits: try r.limits(over: Limits()))
        if let t = try r.int("threshold", min: 1, max: 16) { c.threshold = t }
        if let s = try r.duration("clock_skew") { c.clockSkew = s }
        if let d = try r.duration("delta_wait") { c.deltaWait = d }
        if let p = try r.duration("poll") { c.poll = p }
        if let a = try r.bool("accept_unknown_types") { c.acceptUnknownTypes = a }
        if let n = try r.int("quarantine_max_files", min: 1, max: 1_000_000) { c.quarantineCaps.maxFiles = n }
        if let b = try r.size("quarantine_max_bytes") {
            guard b >= 1 << 20 else { throw r.error("quarantine_max_bytes", "must be at least 1 MiB") }
            c.quarantineCaps.maxBytes = b
        }
        if let a = try r.duration("quarantine_max_age") {
            guard a >= 60 else { throw r.error("quarantine_max_age", "must be at least a minute") }
            c.quarantineCaps.maxAge = a
        }
        if let types = try r.table("types") {
            for name in types.keys {
                guard let t = try types.table(name) else { continue }
                do { try Names.validateType(name) } catch let e as CourierError { throw types.error(name, e.message) }
                try t.allow([
                    "keep", "test_command", "test_timeout", "apply_command", "apply_timeout",
                    "rollback_on_apply_failure", "hardlink_unchanged", "on_refused", "on_error", "hook_timeout",
                ])
                var tc = TypeConfig(name: name)
                if let k = try t.int("keep", min: 0, max: 100) { tc.keep = k }
                tc.testCommand = try command(t, "test_command")
                tc.applyCommand = try command(t, "apply_command")
                if let v = try t.duration("test_timeout") { tc.testTimeout = v }
                if let v = try t.duration("apply_timeout") { tc.applyTimeout = v }
                if let v = try t.bool("rollback_on_apply_failure") { tc.rollbackOnApplyFailure = v }
                if let v = try t.bool("hardlink_unchanged") { tc.hardlinkUnchanged = v }
                tc.onRefused = try command(t, "on_refused")
                tc.onError = try command(t, "on_error")
                if let v = try t.duration("hook_timeout") { tc.hookTimeout = v }
                c.types[name] = tc
            }
        }
        return c
    }

    static func command(_ t: TableReader, _ key: String) throws -> Command? {
        guard let v = t.value(key) else { return nil }
        if let s = v.string {
            guard !s.isEmpty else { throw t.error(key, "must not be empty") }
            return .shell(s)
        }
        let list = try t.strings(key)
        guard !list.isEmpty else { throw t.error(key, "must be a command string or a non-empty list of arguments") }
        return .argv(list)
    }
}
