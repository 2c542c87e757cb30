import CourierCore
import CourierFetch
import Logging

/// What a source is told when asked "anything new?".
public struct SourceContext: Sendable {
    public var type: String
    /// Persistent per-type state of the source (validators, downloads): `state_dir/<type>/`.
    public var stateDir: String
    /// Scratch space for this cycle's tree: `state_dir/<type>/work/`, emptied before each check.
    public var workDir: String
    /// The newest published revision, if any.
    public var latestRevision: UInt64?
    /// Its complete file list (read from its full package on demand: a source that compares
    /// revision numbers only never opens a package).
    public var latestFiles: @Sendable () throws -> [FileEntry]
    public var limits: Limits
    public var logger: Logger
    public var fetcher: Fetcher?
    public var now: Int64
    /// Which mirror served this check (URL without credentials), for the report; set by the source.
    public var served = ServedBy()
}

/// Where a source notes which mirror served it: the report's `mirror`.
public final class ServedBy: Sendable {
    private let value = Locked<String?>(nil)
    public init() {}
    public var mirror: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// A new revision a source offers: a tree on disk, already scanned and hashed.
public struct Candidate: Sendable {
    public var tree: String
    /// The publisher's revision number, when the source has one (dir `revisions` layout);
    /// otherwise the stager allocates `YYYYMMDDNNN`.
    public var revision: UInt64?
    public var files: [FileEntry]
    public var provenance: [String: String]
    public var downloadedBytes: Int64 = 0
    /// Called after the revision is published, to persist what the source must remember
    /// (HTTP validators). Not before: a failed publish must be retried by the next run.
    public var commit: @Sendable () throws -> Void = {}
}

public enum CheckResult: Sendable {
    case unchanged(String)
    case new(Candidate)
}

/// The one protocol every source implements, so that a TUF source slots in beside `dir` and `url`.
public protocol ContentSource: Sendable {
    /// A short description for logs and provenance.
    var describe: String { get }
    func check(_ ctx: SourceContext) async throws -> CheckResult
}

extension StageConfig.SourceSpec {
    public func makeSource() -> any ContentSource {
        switch self {
        case .dirRevisions(let path, let settle): return DirRevisionsSource(root: path, settle: settle)
        case .dirSnapshot(let path, let settle): return DirSnapshotSource(root: path, settle: settle)
        case .url(let spec): return URLSource(spec: spec)
        case .tuf(let spec): return TUFSource(spec: spec)
        }
    }
}

/// Runs `body` with a fetcher of a type's own (`change`: its headers, credentials, CA, rate),
/// shut down afterwards whatever happens.
func withOwnFetcher<T>(
    _ base: Fetcher, _ change: (inout FetchPolicy) -> Void,
    _ body: (Fetcher) async throws -> T
) async throws -> T {
    let fetcher = base.with(change)
    do {
        let r = try await body(fetcher)
        try await fetcher.shutdown()
        return r
    } catch {
        try? await fetcher.shutdown()
        throw error
    }
}

/// Same content as the latest published revision? Compares paths, sizes, modes and hashes.
func sameContent(_ files: [FileEntry], _ ctx: SourceContext) throws -> Bool {
    guard ctx.latestRevision != nil else { return false }
    return try ctx.latestFiles() == files
}
