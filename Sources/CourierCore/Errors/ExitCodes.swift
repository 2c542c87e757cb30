/// The documented exit codes of all three programs (docs/OPERATIONS.md, README). They follow the
/// endpoint manager's LiveUpdate codes where one fits and name Courier's own for the rest.
public enum ExitStatus: Int32, CaseIterable, Sendable {
    case ok = 0
    case failure = 1  // unexpected internal failure
    case config = 2  // configuration file error
    case noValidSource = 4  // LiveUpdate "no valid host": no source reachable / configured
    case malformed = 6  // catalog/metadata file error: malformed package, manifest, index
    case signature = 7  // catalog signature error: bad signature, untrusted or revoked key
    case expired = 8  // catalog out of date: expired, or would roll back
    case download = 9  // download error
    case unsafe = 10  // update failed: hostile archive entry refused
    case integrity = 11  // update failed: size or hash mismatch
    case io = 12  // update failed: file-system error (disk full, permission)
    case applyFailed = 13  // update failed: test or apply command refused the content
    case daemon = 15  // daemon error
    case partial = 16  // done with errors: some items failed, others succeeded
    case locked = 17  // another run holds the lock
    case network = 18  // no network
    case proxy = 19  // proxy error
    case usage = 64  // bad command line (swift-argument-parser's validation code)

    public static func `for`(_ code: CourierError.Code) -> ExitStatus {
        switch code {
        case .config: return .config
        case .source: return .noValidSource
        case .malformed, .wrongType: return .malformed
        case .signature, .revokedKey, .key: return .signature
        case .expired, .rollback: return .expired
        case .download: return .download
        case .unsafeEntry, .limit: return .unsafe
        case .integrity, .baseMismatch: return .integrity
        case .io: return .io
        case .applyFailed: return .applyFailed
        case .daemon: return .daemon
        case .partial: return .partial
        case .locked: return .locked
        case .network: return .network
        case .proxy: return .proxy
        case .usage: return .usage
        default: return .failure
        }
    }
}
