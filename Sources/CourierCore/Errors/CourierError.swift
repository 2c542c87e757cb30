import SystemPackage

/// The one error type of Courier. Every failure carries a stable, extensible `code` (what kind of
/// failure, which also decides the exit code a program returns), a human `message` that names the
/// file and the reason, and, where there is one, the underlying `cause` (an errno, a decoder error).
///
/// Libraries throw only this type; only the executables map it to exit codes (see `ExitCode`).
public struct CourierError: Error, CustomStringConvertible, Sendable {
    /// An extensible code: new codes are new static members, never a new error type.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Bad command line or arguments.
        public static let usage = Code("usage")
        /// A configuration file is missing, malformed or has a bad value.
        public static let config = Code("config")
        /// A configured source is not there (LiveUpdate's "no valid host").
        public static let source = Code("source")
        /// A package, manifest, index or signature file is malformed (catalog/metadata error).
        public static let malformed = Code("malformed")
        /// A signature does not verify, or no trusted key signed.
        public static let signature = Code("signature")
        /// Signed by a key the trust store lists as revoked.
        public static let revokedKey = Code("revoked-key")
        /// The package is past its expiry time (freeze attack) or created in the future.
        public static let expired = Code("expired")
        /// The package would roll the client back.
        public static let rollback = Code("rollback")
        /// An archive entry is unsafe: path, type, mode, duplicate, not in the manifest.
        public static let unsafeEntry = Code("unsafe-entry")
        /// Content does not match what the manifest promises: size or SHA-256.
        public static let integrity = Code("integrity")
        /// A delta does not fit the client's base tree: a base file of a patch is missing or not
        /// the one the delta was built against. Not the package's fault: send the full package.
        public static let baseMismatch = Code("base-mismatch")
        /// A configured bound was exceeded: size, count, expansion ratio, path length.
        public static let limit = Code("limit")
        /// The package is of another content type than expected.
        public static let wrongType = Code("wrong-type")
        /// A file-system call failed (disk full, permission denied, missing directory).
        public static let io = Code("io")
        /// A download failed (HTTP status, truncated body, checksum mismatch).
        public static let download = Code("download")
        /// No network: connection refused, DNS failure, timeout.
        public static let network = Code("network")
        /// The proxy refused or failed.
        public static let proxy = Code("proxy")
        /// Another run holds the lock.
        public static let locked = Code("locked")
        /// A key file already exists or is malformed.
        public static let key = Code("key")
        /// Applying content failed: test or apply command.
        public static let applyFailed = Code("apply-failed")
        /// The daemon could not start or watch.
        public static let daemon = Code("daemon")
        /// Some work items failed while others succeeded.
        public static let partial = Code("partial")
    }

    public let code: Code
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        // An errno is already in the message of `io(…)`; other causes add detail.
        if let cause, !(cause is Errno) { return "\(message) (\(cause))" }
        return message
    }

    /// An error from a system call, keeping errno and naming what was being done to which path.
    public static func io(_ what: String, path: String, errno: Errno) -> CourierError {
        CourierError(.io, "\(path): \(what) failed: \(errno.description)", cause: errno)
    }
}
