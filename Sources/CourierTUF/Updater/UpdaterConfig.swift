import CourierFetch

/// The caps of one `Updater`, with python-tuf 7.0.1's defaults (`tuf/ngclient/config.py`), so
/// that our client gives up exactly where the reference client does. Every download is bounded:
/// a repository (or a man in the middle) that sends endless data is cut off at the cap, and a
/// rotation chain or delegation graph that never ends is cut off at its count.
public struct UpdaterConfig: Sendable {
    /// Root versions tried after the trusted one in one refresh (`max_root_rotations`).
    public var maxRootRotations = 256
    /// Roles visited in one target search (`max_delegations`).
    public var maxDelegations = 32
    /// Largest `N.root.json` accepted, in bytes (`root_max_length`).
    public var rootMaxLength = 512_000
    /// Largest `timestamp.json` (`timestamp_max_length`).
    public var timestampMaxLength = 16_384
    /// Largest `snapshot.json` when timestamp does not give its length (`snapshot_max_length`).
    public var snapshotMaxLength = 2_000_000
    /// Largest targets or delegated targets file when snapshot does not give its length
    /// (`targets_max_length`; python-tuf 7.0.1 says 5 000 000).
    public var targetsMaxLength = 5_000_000
    /// With consistent snapshots, fetch targets as `dir/{hash}.{name}` (`prefix_targets_with_hash`).
    public var prefixTargetsWithHash = true
    /// Targets up to this length are fetched into memory on the updater's pooled connection;
    /// longer ones stream to a file (bounded memory whatever the target's size).
    public var targetInMemoryMax = 1 << 20
    /// Bounds of every metadata file's JSON parse (bytes, nesting), after the length caps above
    /// have bounded the download: a snapshot may give a larger length than `targetsMaxLength`.
    public var parseLimits = JSONValue.Limits()

    public init() {}

    /// The HTTP behaviour a TUF client wants from `Fetcher`: python-tuf's 30 s socket timeout,
    /// a short retry window for transient failures (5xx, refused connections; a 404 or 403 is
    /// final and never retried), no cool-downs remembered across requests — a 403 on
    /// `N.root.json` is the end of the rotation chain, not a reason to stop asking that host for
    /// `timestamp.json` — and no state kept on disk.
    public static func fetchPolicy(userAgent: String) -> FetchPolicy {
        var p = FetchPolicy()
        p.userAgent = userAgent
        p.connectTimeout = 30
        p.readTimeout = 30
        p.retryFor = 10
        p.initialBackoff = 0.5
        p.maxBackoff = 4
        p.forbiddenCoolDown = 0
        p.busyCoolDown = 0
        p.stateDir = nil
        return p
    }
}
