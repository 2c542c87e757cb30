import CourierConfig
import CourierCore

/// A delivery policy (docs/DELIVER.md, "Policy file"): groups of inboxes, each with the revision
/// of every type it should hold — the endpoint manager's groups and named versions.
public struct Policy: Sendable {
    public struct Group: Sendable {
        public var name: String
        /// Absolute paths or globs.
        public var inboxes: [String]
        public var types: [(type: String, spec: RevisionSpec)]
        /// The group's clients' limits: its own `max_tree_bytes`/`delta_window` over the file's.
        public var limits: Limits
    }
    public var path: String
    public var statusTemplate: String
    public var groups: [Group]

    public static func load(_ path: String) throws -> Policy {
        try withTOMLFile(path, parse)
    }

    public static func parse(_ root: TableReader) throws -> Policy {
        try root.allow(Set(["status_path", "groups"] + TableReader.limitKeys))
        let fileLimits = try root.limits(over: Limits())
        let template = try root.string("status_path") ?? TargetList.defaultStatusTemplate
        if !template.contains("{inbox}") && !template.hasPrefix("/") {
            throw root.error("status_path", "must contain {inbox} or be an absolute path")
        }
        guard let groups = try root.table("groups"), !groups.keys.isEmpty else {
            throw root.error(nil, "has no [groups.NAME] table: nothing would be delivered")
        }
        var out: [Group] = []
        // TOML tables are unordered; sort so that plans and outputs are stable.
        for name in groups.keys {
            guard let g = try groups.table(name) else { continue }
            try g.allow(Set(["inboxes", "types"] + TableReader.limitKeys))
            let inboxes = try g.strings("inboxes").map { g.resolve($0) }
            if inboxes.isEmpty { throw g.error("inboxes", "must list at least one inbox path or glob") }
            guard let types = try g.table("types"), !types.keys.isEmpty else {
                throw g.error("types", "must name at least one type, e.g. types = { virus-defs = \"latest\" }")
            }
            let wants: [(String, RevisionSpec)] = try PolicyRevisions.parseTypes(types).map {
                ($0.type, $0.named.map(RevisionSpec.named) ?? .latest)
            }
            out.append(Group(name: name, inboxes: inboxes, types: wants, limits: try g.limits(over: fileLimits)))
        }
        return Policy(path: root.path, statusTemplate: template, groups: out)
    }

    /// Every inbox of every group, once. An inbox in two groups is an error naming both: the
    /// policy would say two things about one client.
    public func targets(onlyTypes: Set<String>?) throws -> [Target] {
        var owner: [String: String] = [:]
        var out: [Target] = []
        for g in groups {
            let wants = g.types.filter { onlyTypes?.contains($0.type) ?? true }
            for pat in g.inboxes {
                let matched = TargetList.expand(pat)
                if matched.isEmpty {
                    out.append(
                        Target(
                            inbox: pat, group: g.name, wants: wants, statusPath: "", limits: g.limits,
                            problem: "no inbox matches \(pat) (group \(g.name))"))
                }
                for inbox in matched {
                    let key = TargetList.canonical(inbox)
                    if let other = owner[key] {
                        if other == g.name { continue }
                        throw CourierError(
                            .config,
                            "\(path): inbox \(inbox) is in groups \(other) and \(g.name); an inbox may be in one group only"
                        )
                    }
                    owner[key] = g.name
                    out.append(
                        Target(
                            inbox: inbox, group: g.name, wants: wants,
                            statusPath: TargetList.statusPath(statusTemplate, inbox: inbox), limits: g.limits))
                }
            }
        }
        return out
    }

    public func group(named n: String) throws -> Group {
        guard let g = groups.first(where: { $0.name == n }) else {
            throw CourierError(
                .config, "\(path): no group \(n) (groups: \(groups.map(\.name).joined(separator: ", ")))")
        }
        return g
    }
}
