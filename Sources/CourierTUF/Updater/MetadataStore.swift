import CourierCore

/// The client's metadata directory: the metadata it trusts, one file per role under a
/// non-versioned name (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`,
/// `<quoted role>.json` for a delegated role), each the exact bytes that were verified.
///
/// Writes are atomic (a dot-named temporary, fsync, rename), so a crash leaves the old file or
/// the new one, never a torn one. Reads are best effort: a file that is missing or unreadable is
/// simply not there — the updater then downloads the role, as python-tuf does.
public struct MetadataStore: Sendable {
    public let directory: String

    /// Bytes read from a local file at most (a local file is ours, but a cap keeps a corrupted
    /// or planted huge file from taking all memory).
    public static let readLimit = 16 << 20

    public init(directory: String) {
        self.directory = directory
    }

    /// `<quoted role>.json`: python-tuf's `parse.quote(rolename, "") + ".json"`.
    public static func fileName(role: String) -> String {
        PercentEncoding.quote(role) + ".json"
    }

    public func path(role: String) -> String {
        directory + "/" + MetadataStore.fileName(role: role)
    }

    /// The stored bytes of `role`, or nil when there are none (or they cannot be read).
    public func load(_ role: String) -> [UInt8]? {
        try? Sys.readFile(path(role: role), limit: MetadataStore.readLimit)
    }

    /// The trust anchor, `root.json`: unlike the other roles it must be there.
    public func loadRoot() throws -> [UInt8] {
        let p = path(role: "root")
        guard Sys.exists(p) else {
            throw CourierError(.io, "\(p): no trusted root; run 'init' with the repository's root.json first")
        }
        return try Sys.readFile(p, limit: MetadataStore.readLimit)
    }

    /// Stores `bytes` as `role`'s metadata, atomically.
    public func persist(_ role: String, _ bytes: [UInt8]) throws {
        try Sys.writeFileAtomically(path(role: role), bytes)
    }

    /// Removes `role`'s file if there is one.
    public func remove(_ role: String) throws {
        let p = path(role: role)
        if (try Sys.lstat(p)) != nil { try Sys.unlink(p) }
    }

    /// `init`: copies a trusted root into the directory (created if missing) as `root.json`.
    /// No checks and no network, as the conformance protocol asks: the root is verified by the
    /// first refresh, which uses it as the trust anchor.
    public func initialize(trustedRoot: String) throws {
        let bytes = try Sys.readFile(trustedRoot, limit: MetadataStore.readLimit)
        try Sys.mkdirs(directory)
        try persist("root", bytes)
    }
}
