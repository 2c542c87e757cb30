#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CourierCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The state directory: `status.json` (atomic rewrite), `history.jsonl` (appended), `pins.json`.
public final class StateFiles: @unchecked Sendable {
    public let dir: String
    public var statusPath: String { dir + "/status.json" }
    public var historyPath: String { dir + "/history.jsonl" }
    public var pinsPath: String { dir + "/pins.json" }

    public init(dir: String) throws {
        self.dir = dir
        try Sys.mkdirs(dir)
    }

    public func readStatus() -> ClientStatus? {
        (try? ClientStatus.load(statusPath)) ?? nil
    }

    public func writeStatus(_ s: ClientStatus, durable: Bool = true) throws {
        try Sys.writeFileAtomically(statusPath, s.encoded(), durable: durable)
    }

    /// Pins: type → the revision the operator named (the endpoint manager's "named version").
    public func readPins() -> [String: UInt64] {
        guard let b = try? Sys.readFile(pinsPath, limit: 1 << 20),
              let p = try? JSONDecoder().decode([String: UInt64].self, from: Data(b)) else { return [:] }
        return p
    }

    public func writePins(_ p: [String: UInt64]) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try Sys.writeFileAtomically(pinsPath, Array(try enc.encode(p)) + [0x0a])
    }

    public struct HistoryEntry: Codable, Sendable {
        public var at: String
        public var type: String
        public var event: String          // applied, refused, rolled-back, duplicate-removed, recovered
        public var revision: UInt64?
        public var previous: UInt64?
        public var package: String?
        public var reason: String?
        public var seconds: Double?
        public init(at: String, type: String, event: String, revision: UInt64? = nil, previous: UInt64? = nil,
                    package: String? = nil, reason: String? = nil, seconds: Double? = nil) {
            self.at = at; self.type = type; self.event = event; self.revision = revision; self.previous = previous
            self.package = package; self.reason = reason; self.seconds = seconds
        }
    }

    /// Appends one JSON line (O_APPEND, one write: lines stay whole).
    public func appendHistory(_ e: HistoryEntry) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? enc.encode(e) else { return }
        let fd = Glibc.open(historyPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        let line = Array(data) + [0x0a]
        _ = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}
