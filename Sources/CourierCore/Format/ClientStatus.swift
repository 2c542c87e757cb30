import FoundationEssentials
@preconcurrency import Glibc

/// What the client holds and what happened, per type: the body of `status.json` (docs/INBOXD.md),
/// which delivery tools read to choose a delta or a full package, and humans read to see age.
public struct ClientStatus: Codable, Sendable, Equatable {
    public struct LastError: Codable, Sendable, Equatable {
        public var at: String
        public var package: String
        public var code: String
        public var reason: String
        public init(at: String, package: String, code: String, reason: String) {
            self.at = at
            self.package = package
            self.code = code
            self.reason = reason
        }
    }
    /// A revision this client refused for a reason about the revision itself
    /// (`Acceptance.counts`): senders skip it (`refused`) until `--force` or a newer revision.
    public struct Refused: Codable, Sendable, Equatable {
        public var revision: UInt64
        public var code: String
        public var reason: String
        public var at: String
        public var package: String
        public init(revision: UInt64, code: String, reason: String, at: String, package: String) {
            self.revision = revision
            self.code = code
            self.reason = reason
            self.at = at
            self.package = package
        }
    }
    /// The quarantine's size after the last pass, and how many entries its caps evicted so far.
    public struct QuarantineSummary: Codable, Sendable, Equatable {
        public var files: Int
        public var bytes: Int64
        public var evicted: Int
        public init(files: Int = 0, bytes: Int64 = 0, evicted: Int = 0) {
            self.files = files
            self.bytes = bytes
            self.evicted = evicted
        }
    }
    public struct TypeStatus: Codable, Sendable, Equatable {
        public var installed: UInt64?
        public var previous: UInt64?
        public var appliedAt: String?
        /// `created` of the installed package: the content's age, not the apply time.
        public var contentCreated: String?
        public var pinned: UInt64?
        public var kept: [UInt64] = []
        public var pending: [String] = []
        public var lastError: LastError?
        /// Refused revisions, ascending, at most `Acceptance.refusedKept`; nil (absent from
        /// the file, as in status files of older versions) when there are none.
        public var refused: [Refused]?
        public init() {}
    }
    public var format = 1
    public var host: String
    public var updated: String
    public var types: [String: TypeStatus]
    /// Absent in status files of older versions, and until the daemon first looks at its quarantine.
    public var quarantine: QuarantineSummary?

    public static func empty(host: String) -> ClientStatus {
        ClientStatus(host: host, updated: RFC3339.format(Int64(time(nil))), types: [:])
    }

    public func encoded() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        return Array(try! enc.encode(self)) + [0x0a]
    }

    /// Reads a client's `status.json`: nil when there is none, an error naming the file when it
    /// cannot be read or parsed. The daemon, `push`, `select` and `report` all read it here.
    public static func load(_ path: String) throws -> ClientStatus? {
        guard Sys.exists(path) else { return nil }
        return try decode(Sys.readFile(path, limit: 16 << 20), path: path)
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> ClientStatus {
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        do { return try dec.decode(ClientStatus.self, from: Data(bytes)) } catch {
            throw CourierError(.malformed, "\(path): not a valid status file: \(error)")
        }
    }
}
