@preconcurrency import Glibc

/// Bounds on everything a package can make a reader do. The defaults are generous for security
/// content (the largest ClamAV database is a few hundred MiB) and small enough that a hostile
/// package cannot fill a disk or exhaust memory. All are configurable.
public struct Limits: Sendable, Equatable {
    /// Largest manifest entry read into memory (bounds RSS before any signature is checked).
    public var maxManifestBytes: Int = 32 << 20
    /// Largest signatures entry.
    public var maxSignaturesBytes: Int = 64 << 10
    /// Largest total of payload bytes a package may carry (or a manifest may describe).
    public var maxTotalBytes: UInt64 = 8 << 30
    /// Most entries (manifest, signatures and payload) and most files in a tree.
    public var maxEntries: Int = 200_000
    /// Most bytes of uncompressed data per byte of package file, checked as data streams.
    public var maxExpansionRatio: Int64 = 1000
    /// Most bytes of a payload path.
    public var maxPathBytes: Int = Names.maxPathBytes
    /// Most memory one in-file patch of a format 2 delta may take while applied: its files' base
    /// and result contents (`delta_window`). Above it the delta is refused and push sends the
    /// full package; the stager carries such files whole.
    public var maxDeltaWindow: UInt64 = 256 << 20

    public init() {}

    /// The field-wise largest of `all` and the defaults: what push verifies a package with once
    /// for every inbox, before it checks each inbox's own limits (`ClientLimitCheck`), so that
    /// a client allowed more than the defaults is not refused by push's own verification.
    public static func loosest(_ all: [Limits]) -> Limits {
        var l = Limits()
        for x in all {
            l.maxManifestBytes = max(l.maxManifestBytes, x.maxManifestBytes)
            l.maxSignaturesBytes = max(l.maxSignaturesBytes, x.maxSignaturesBytes)
            l.maxTotalBytes = max(l.maxTotalBytes, x.maxTotalBytes)
            l.maxEntries = max(l.maxEntries, x.maxEntries)
            l.maxExpansionRatio = max(l.maxExpansionRatio, x.maxExpansionRatio)
            l.maxPathBytes = max(l.maxPathBytes, x.maxPathBytes)
            l.maxDeltaWindow = max(l.maxDeltaWindow, x.maxDeltaWindow)
        }
        return l
    }

    /// Whether every bound of `self` admits at least what `other`'s does.
    public func admitsAll(of other: Limits) -> Bool {
        maxManifestBytes >= other.maxManifestBytes && maxSignaturesBytes >= other.maxSignaturesBytes
            && maxTotalBytes >= other.maxTotalBytes && maxEntries >= other.maxEntries
            && maxExpansionRatio >= other.maxExpansionRatio && maxPathBytes >= other.maxPathBytes
            && maxDeltaWindow >= other.maxDeltaWindow
    }
}

/// What a verifier needs besides the package: whom to trust, what time it is, how much to allow.
public struct VerifyOptions: Sendable {
    public var trust: TrustStore
    /// Seconds since the epoch; the current time when nil.
    public var now: Int64?
    /// Allowed clock difference between stager and client, in seconds (default 5 minutes).
    public var clockSkew: Int64 = 300
    /// The reader's limits: the configured ones (inboxd.toml, policy.toml, push's options), never
    /// a silent default (issue #17.6), hence no default in `init`.
    public var limits: Limits
    /// If set, a package of another content type is refused.
    public var expectedType: String?
    /// Skip the expiry check. Only for the stager reading its *own* outbox (the base of a
    /// delta may be older than a package lifetime); never for content about to be used.
    public var ignoreExpiry = false

    public init(trust: TrustStore, limits: Limits, now: Int64? = nil) {
        self.trust = trust
        self.limits = limits
        self.now = now
    }

    /// The checks of a verified manifest that depend on the moment and the caller, not on the
    /// package's bytes: expiry, creation in the future, type. `PackageReader` runs them on
    /// every read; push runs them again on a verdict it remembers (`VerifiedCache`).
    public func checkTimeAndType(created: String, expires: String, type: String, path: String) throws {
        let now = self.now ?? Int64(time(nil))
        if !ignoreExpiry && now > (RFC3339.parse(expires) ?? 0) + clockSkew {
            throw CourierError(.expired, "\(path): package expired at \(expires) (now \(RFC3339.format(now)))")
        }
        if !ignoreExpiry && (RFC3339.parse(created) ?? 0) > now + clockSkew {
            throw CourierError(
                .expired,
                "\(path): package created in the future (\(created), now \(RFC3339.format(now))); check the clocks")
        }
        if let want = expectedType, want != type {
            throw CourierError(.wrongType, "\(path): package is of type \(Escape.quoted(type)), expected '\(want)'")
        }
    }
}
