import CourierCore

/// Push's check of a package against one client's limits (`Target.limits`: policy.toml's
/// `max_tree_bytes`/`delta_window`, or `--max-tree-bytes`/`--delta-window`), so that push does
/// not send a package the client's daemon would only quarantine (issue #17.6).
///
/// Push verifies each package once under the loosest limits of the run (`Limits.loosest`);
/// an inbox whose limits are tighter gets its packages checked again here, by the reader the
/// client runs (`PackageReader`: signatures, then the manifest against the limits; no payload
/// is read), once per package and set of limits. A delta the client would refuse is replaced
/// by the full package when that one fits (as the client's refusal of a delta would make the
/// next push do); otherwise the inbox gets an error that names the package and the limits.
public final class ClientLimitCheck: Sendable {
    /// (package path, limits) → the client's refusal, or nil when it would accept.
    private let memo = Locked<[String: String?]>([:])
    let options: VerifyOptions

    /// `options`: the run's verification (trust, threshold); its limits are those push verifies
    /// every package with, so an inbox whose limits admit as much needs no check here.
    public init(options: VerifyOptions) {
        var o = options
        // Expiry and type are verification's to report, once per package, not per inbox.
        o.ignoreExpiry = true
        o.expectedType = nil
        self.options = o
    }

    /// The decision adjusted to what a client under `limits` accepts.
    public func adjust(_ d: Decision, limits: Limits, catalog: Catalog, who: String) -> Decision {
        guard d.action == .full || d.action == .delta, let p = d.package, let why = refusal(p, limits)
        else { return d }
        let name = Self.fileName(p)
        if d.action == .delta, let rev = d.revision, let full = catalog.types[d.type]?.revisions[rev]?.full,
            refusal(full, limits) == nil
        {
            var n = d
            n.action = .full
            n.package = full
            n.base = nil
            n.code = "delta-refused"
            n.reason =
                "the client would refuse \(name) under \(Self.describe(limits)) (\(who)): \(why); sending the full package"
            return n
        }
        var n = d
        n.action = .error
        n.code = "limit"
        n.reason = "not copied: the client would refuse \(name) under \(Self.describe(limits)) (\(who)): \(why)"
        return n
    }

    /// The client's refusal of the package at `path` under `limits`, or nil. Only a limit
    /// refuses here: any other failure is verification's to report.
    func refusal(_ path: String, _ limits: Limits) -> String? {
        if limits.admitsAll(of: options.limits) { return nil }
        let key = "\(path)\u{0}\(limits)"
        if let known = memo.withLock({ $0[key] }) { return known }
        var o = options
        o.limits = limits
        var why: String? = nil
        do { _ = try PackageReader(path: path, options: o, keepManifestBytes: false) } catch let e as CourierError {
            // The reader's sentence names the path; the decision names the package already.
            if e.code == .limit {
                why = e.message.hasPrefix(path + ": ") ? String(e.message.dropFirst(path.count + 2)) : e.message
            }
        } catch {}
        memo.withLock { $0[key] = .some(why) }
        return why
    }

    /// The configurable limits, as an operator writes them.
    public static func describe(_ l: Limits) -> String {
        "max_tree_bytes \(l.maxTotalBytes), delta_window \(l.maxDeltaWindow)"
    }

    static func fileName(_ p: String) -> String { p.split(separator: "/").last.map(String.init) ?? p }
}
