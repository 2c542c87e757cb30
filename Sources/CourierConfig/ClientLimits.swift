import CourierCore

extension TableReader {
    /// The keys a client sets its package limits with, named alike in inboxd.toml (the client's
    /// own) and policy.toml (what push checks on the client's behalf, docs/DELIVER.md).
    public static let limitKeys = ["max_tree_bytes", "delta_window"]

    /// `max_tree_bytes` and `delta_window` of this table applied over `base`: a key that is
    /// absent keeps `base`'s value, so a policy group inherits the file's and the file the
    /// built-in defaults (which are courier-inboxd's).
    public func limits(over base: Limits) throws -> Limits {
        var l = base
        if let m = try size("max_tree_bytes") { l.maxTotalBytes = UInt64(m) }
        // Memory one in-file patch may take (its files' base and result); a delta needing more
        // is refused by the client, and push sends the full package instead.
        if let w = try size("delta_window") {
            guard w >= 1 << 20 else { throw error("delta_window", "must be at least 1 MiB") }
            l.maxDeltaWindow = UInt64(w)
        }
        return l
    }
}
