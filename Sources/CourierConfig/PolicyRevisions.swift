import CourierCore

/// What a delivery policy (`policy.toml`, docs/DELIVER.md) asks of each content type, read in one
/// place for both programs that need it: courier-deliver (the groups it delivers to) and
/// courier-stage (`hold_from`: the named revisions its retention must keep).
public enum PolicyRevisions {
    /// A group's `types = { virus-defs = "latest", ips-rules = 20261120001 }`, sorted by type:
    /// `named` is nil for "latest".
    public static func parseTypes(_ types: TableReader) throws -> [(type: String, named: UInt64?)] {
        var out: [(String, UInt64?)] = []
        for t in types.table.keys.sorted() {
            do { try Names.validateType(t) } catch { throw types.error(t, "is not a valid type name") }
            let v = types.table[t]!
            if let s = v.string, s == "latest" {
                out.append((t, nil))
            } else if let i = v.int, i > 0 {
                out.append((t, UInt64(i)))
            } else if let s = v.string, let r = Names.parseRevision(s) {
                out.append((t, r))
            } else {
                throw types.error(t, "must be \"latest\" or a revision number")
            }
        }
        return out
    }

    /// Every named revision in a policy file: type → revision → the groups that name it.
    public static func named(policyPath: String) throws -> [String: [UInt64: [String]]] {
        try withTOMLFile(policyPath) { root in
            var out: [String: [UInt64: [String]]] = [:]
            guard let groups = try root.table("groups") else { return out }
            for name in groups.table.keys.sorted() {
                guard let g = try groups.table(name), let types = try g.table("types") else { continue }
                for (t, r) in try parseTypes(types) {
                    if let r { out[t, default: [:]][r, default: []].append(name) }
                }
            }
            return out
        }
    }
}
