import CourierCore
import Crypto

/// Finding a target's entry in the delegation tree: python-tuf's
/// `Updater._preorder_depth_first_walk` and `_load_targets`.
public enum TargetSearch {
    /// Pre-order depth-first search of the delegations for `path`, starting at the top-level
    /// targets: the first role (in listed order, parents before children) that lists `path`
    /// wins. Visited roles are skipped (cycles); at most `maxDelegations` + 1 roles are visited
    /// (python-tuf's loop bound, the top-level targets included), after which the search gives up
    /// and returns nil; a matching `terminating` delegation drops every role not yet visited.
    ///
    /// `load(role, delegator, &set)` is called for each role the set does not hold as verified
    /// by that delegator (`set.contains(role:delegator:)`), including the top-level "targets"
    /// (delegator "root") when it is not loaded. It must leave the role loaded in `set` — the
    /// updater tries its local copy with `set.updateDelegatedTargets`, then the remote one — or
    /// throw; what it throws ends the search, as in python-tuf.
    ///
    /// Why `load` receives the set: the updater's set is the very variable passed here `inout`;
    /// a closure that captured and mutated it would be an overlapping access (a runtime trap).
    public static func findTarget(
        _ path: String,
        in set: inout TrustedMetadataSet,
        maxDelegations: Int = 32,
        load: (_ role: String, _ delegator: String, _ set: inout TrustedMetadataSet) throws -> Void
    ) throws -> (TargetFile, role: String)? {
        var walk = Walk(path, maxDelegations: maxDelegations)
        while true {
            switch try walk.next(in: set) {
            case .need(let role, let delegator): try load(role, delegator, &set)
            case .found(let file, let role): return (file, role)
            case .notFound: return nil
            }
        }
    }

    /// The same search as a resumable state machine, for callers whose loading is `async` (a
    /// synchronous closure cannot await a download): `next(in:)` walks until it needs a role the
    /// set does not hold as verified by its delegator and returns `.need`; the caller loads it
    /// (`updateDelegatedTargets`, or `updateTargets` for "targets") and calls `next` again.
    /// Each role is asked for once, in python-tuf's order; no re-walking.
    public struct Walk: Sendable {
        public enum Step: Sendable {
            /// Load `role` as delegated by `delegator` into the set, then call `next` again.
            case need(role: String, delegator: String)
            case found(TargetFile, role: String)
            case notFound
        }

        public let path: String
        public let maxDelegations: Int
        private var toVisit: [(role: String, parent: String)] = [("targets", "root")]
        private var visited = Set<RoleName>()
        private var pending: (role: String, parent: String)?
        private var result: Step?

        public init(_ path: String, maxDelegations: Int = 32) {
            self.path = path
            self.maxDelegations = maxDelegations
        }

        public mutating func next(in set: TrustedMetadataSet) throws -> Step {
            if let result { return result }
            if let p = pending {
                pending = nil
                guard set.contains(role: p.role, delegator: p.parent), let md = set.targetsRole(p.role) else {
                    throw CourierError(
                        .tufOrder,
                        "target search: \(Escape.quoted(p.role)) (delegated by \(Escape.quoted(p.parent))) was not loaded into the trusted set"
                    )
                }
                if let step = visit(p, md) { return finish(step) }
            }
            while visited.count <= maxDelegations, let n = toVisit.popLast() {
                if visited.contains(RoleName(n.role)) { continue }
                guard set.contains(role: n.role, delegator: n.parent), let md = set.targetsRole(n.role) else {
                    pending = n
                    return .need(role: n.role, delegator: n.parent)
                }
                if let step = visit(n, md) { return finish(step) }
            }
            return finish(.notFound)
        }

        private mutating func finish(_ s: Step) -> Step {
            result = s
            return s
        }

        /// Looks `path` up in one loaded role; on a miss, marks the role visited and pushes the
        /// delegations trusted for `path` so that they pop in listed order.
        private mutating func visit(_ n: (role: String, parent: String), _ md: SignedMetadata<Targets>) -> Step? {
            if let t = md.signed.target(path) { return .found(t, role: n.role) }
            visited.insert(RoleName(n.role))
            guard let d = md.signed.delegations else { return nil }
            var children: [(role: String, parent: String)] = []
            for (child, terminating) in d.rolesForTarget(path) {
                children.append((child, n.role))
                if terminating {
                    // Not backtracking to other roles.
                    toVisit.removeAll()
                    break
                }
            }
            toVisit.append(contentsOf: children.reversed())
            return nil
        }
    }
}

/// Whether a delegated role is trusted for a target path (python-tuf
/// `DelegatedRole.is_delegated_path`).
public enum PathMatch {
    public static func isDelegatedPath(_ path: String, role: DelegatedRole) -> Bool {
        if let prefixes = role.pathHashPrefixes {
            let h = Hex.encode(SHA256.hash(data: Array(path.utf8)))
            return prefixes.contains { h.utf8.starts(with: $0.utf8) }
        }
        if let paths = role.paths {
            return paths.contains { matches(path, pattern: $0) }
        }
        return false
    }

    /// python-tuf `_is_target_in_pathpattern`: split both on "/", same number of parts, each
    /// part matched with `fnmatch.fnmatchcase` (so `*` never crosses a "/").
    public static func matches(_ path: String, pattern: String) -> Bool {
        let t = path.unicodeScalars.split(separator: "/", omittingEmptySubsequences: false)
        let p = pattern.unicodeScalars.split(separator: "/", omittingEmptySubsequences: false)
        guard t.count == p.count else { return false }
        for (a, b) in zip(t, p) where !fnmatchcase(Array(a), Array(b)) { return false }
        return true
    }

    enum Token {
        case any  // ?
        case star  // *
        case char(Unicode.Scalar)
        case set(negated: Bool, items: [ClosedRange<UInt32>])
    }

    /// Python's `fnmatch.translate` grammar: `*`, `?`, `[seq]`, `[!seq]` (a `]` right after
    /// `[` or `[!` is literal, ranges `a-z`, a reversed range is empty, an unclosed `[` is a
    /// literal), everything else literal; matching is on code points, case-sensitive.
    static func compile(_ p: [Unicode.Scalar]) -> [Token] {
        var out: [Token] = []
        var i = 0
        let n = p.count
        while i < n {
            let c = p[i]
            i += 1
            switch c {
            case "*":
                if case .star? = out.last { continue }
                out.append(.star)
            case "?": out.append(.any)
            case "[":
                var j = i
                if j < n, p[j] == "!" { j += 1 }
                if j < n, p[j] == "]" { j += 1 }
                while j < n, p[j] != "]" { j += 1 }
                if j >= n {
                    out.append(.char("["))
                    continue
                }
                var k = i
                var negated = false
                if p[k] == "!" {
                    negated = true
                    k += 1
                }
                var items: [ClosedRange<UInt32>] = []
                while k < j {
                    let a = p[k].value
                    // "a-b" is a range unless the "-" is the set's last character (then literal).
                    if k + 2 < j, p[k + 1] == "-" {
                        let b = p[k + 2].value
                        if a <= b { items.append(a...b) }
                        k += 3
                        continue
                    }
                    items.append(a...a)
                    k += 1
                }
                out.append(.set(negated: negated, items: items))
                i = j + 1
            default: out.append(.char(c))
            }
        }
        return out
    }

    static func one(_ t: Token, _ c: Unicode.Scalar) -> Bool {
        switch t {
        case .any: return true
        case .star: return false
        case .char(let x): return x == c
        case .set(let neg, let items): return items.contains { $0.contains(c.value) } != neg
        }
    }

    /// Glob match with single-star backtracking (each non-star token is one code point).
    static func fnmatchcase(_ s: [Unicode.Scalar], _ pattern: [Unicode.Scalar]) -> Bool {
        let toks = compile(pattern)
        var si = 0
        var ti = 0
        var starT = -1
        var starS = 0
        while si < s.count {
            if ti < toks.count, case .star = toks[ti] {
                starT = ti
                starS = si
                ti += 1
            } else if ti < toks.count, one(toks[ti], s[si]) {
                si += 1
                ti += 1
            } else if starT >= 0 {
                ti = starT + 1
                starS += 1
                si = starS
            } else {
                return false
            }
        }
        while ti < toks.count, case .star = toks[ti] { ti += 1 }
        return ti == toks.count
    }
}
