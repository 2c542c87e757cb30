import CourierConfig
import CourierCore
@preconcurrency import Glibc

/// One inbox to deliver into, with what it should hold and where its client's status is.
public struct Target: Sendable {
    public var inbox: String
    /// The policy group that chose it; nil from `--inbox` and `--inboxes-from`.
    public var group: String?
    /// Type → wanted revision. Empty: every type of the outbox (filtered by `--type`), at latest.
    public var wants: [(type: String, spec: RevisionSpec)]
    public var statusPath: String
    /// The client's package limits as the operator declared them (policy.toml's
    /// `max_tree_bytes`/`delta_window`, or push's `--max-tree-bytes`/`--delta-window`): push
    /// refuses for this inbox a package its client would refuse (`ClientLimitCheck`).
    public var limits: Limits
    /// Set when the target could not be resolved (a pattern that matched nothing).
    public var problem: String?
}

/// Expands the inbox lists an operator gives: paths, globs, files of them.
public enum TargetList {
    public static let defaultStatusTemplate = "{inbox}/../state/status.json"

    /// The template with `{inbox}` filled in and normalised (`/c/inbox/../state/status.json` is
    /// `/c/state/status.json`; `..` after a symlinked inbox as the kernel reads it), as
    /// courier-inboxd resolves its default `state_dir`: both name the same file, and messages show
    /// a plain path.
    public static func statusPath(_ template: String, inbox: String) -> String {
        TableReader.normalized(template.replacing("{inbox}", with: inbox))
    }

    /// `glob(3)` without `GLOB_NOCHECK`: only existing paths. A pattern without glob characters
    /// is returned as is, so that a missing inbox is reported as missing rather than vanishing.
    public static func expand(_ pattern: String) -> [String] {
        guard pattern.contains(where: { "*?[".contains($0) }) else { return [pattern] }
        var g = glob_t()
        defer { globfree(&g) }
        guard glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }

    /// `--inboxes-from FILE`: one path or glob per line; blank lines and `#` comments skipped;
    /// relative entries are relative to the file's directory.
    public static func readList(_ path: String) throws -> [String] {
        let bytes = try Sys.readFile(path, limit: 64 << 20)
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var out: [String] = []
        for raw in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimming(" \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            out.append(line.hasPrefix("/") ? line : dir + "/" + line)
        }
        return out
    }

    /// Targets from plain inbox patterns: each matched inbox wants `types` (empty: all) at `spec`.
    public static func targets(
        patterns: [String], types: [String], spec: RevisionSpec,
        statusTemplate: String, limits: Limits
    ) -> [Target] {
        var seen = Set<String>()
        var out: [Target] = []
        for pat in patterns {
            let matched = expand(pat)
            if matched.isEmpty {
                out.append(
                    Target(
                        inbox: pat, group: nil, wants: [], statusPath: "", limits: limits,
                        problem: "no inbox matches \(pat)"))
            }
            for inbox in matched where seen.insert(canonical(inbox)).inserted {
                out.append(
                    Target(
                        inbox: inbox, group: nil, wants: types.map { ($0, spec) },
                        statusPath: statusPath(statusTemplate, inbox: inbox), limits: limits))
            }
        }
        return out
    }

    /// The identity of an inbox for de-duplication: its real path when it exists.
    public static func canonical(_ p: String) -> String {
        Sys.realPath(p) ?? p
    }
}
