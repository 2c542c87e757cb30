import CourierCore
import FoundationEssentials
@preconcurrency import Glibc
import SystemPackage

/// The state directory: `status.json` (atomic rewrite), `history.jsonl` (appended), `pins.json`.
/// Sendable as the compiler checks it: it holds only its immutable path; each call opens, writes
/// and closes its own files (the state lock, not this type, orders writers between processes).
public final class StateFiles: Sendable {
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

    /// `retrying`: type → packages left in the inbox after a transient error (the daemon's
    /// marker; `ClientStatus` readers ignore the key).
    public func writeStatus(_ s: ClientStatus, retrying: [String: [String]] = [:], durable: Bool = true) throws {
        try Sys.writeFileAtomically(statusPath, StatusDocument.encode(s, retrying: retrying), durable: durable)
    }

    /// Pins: type → the revision the operator named (the endpoint manager's "named version").
    /// The operator's pins. No file means no pins; a file that cannot be read or is not a JSON
    /// object of type → revision throws, naming the file: a pin silently dropped would let the
    /// daemon apply what the operator held back.
    public func readPins() throws -> [String: UInt64] {
        // One open, no exists-then-read: an unpin removing the file in between reads as "no pins",
        // not as an I/O error.
        let b: [UInt8]
        do { b = try Sys.readFile(pinsPath, limit: 1 << 20) } catch let e as CourierError
            where (e.cause as? Errno) == .noSuchFileOrDirectory
        {
            return [:]
        }
        do {
            return try JSONDecoder().decode([String: UInt64].self, from: Data(b))
        } catch {
            throw CourierError(
                .config, "\(pinsPath): not a JSON object of type to revision; fix it, or remove it to drop every pin",
                cause: error)
        }
    }

    public func writePins(_ p: [String: UInt64]) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try Sys.writeFileAtomically(pinsPath, Array(try enc.encode(p)) + [0x0a])
    }

    public struct HistoryEntry: Codable, Sendable {
        public var at: String
        public var type: String
        public var event: String  // applied, refused, rolled-back, duplicate-removed, recovered
        public var revision: UInt64?
        public var previous: UInt64?
        public var package: String?
        public var reason: String?
        public var seconds: Double?
        public init(
            at: String, type: String, event: String, revision: UInt64? = nil, previous: UInt64? = nil,
            package: String? = nil, reason: String? = nil, seconds: Double? = nil
        ) {
            self.at = at
            self.type = type
            self.event = event
            self.revision = revision
            self.previous = previous
            self.package = package
            self.reason = reason
            self.seconds = seconds
        }
    }

    /// Appends one JSON line (O_APPEND: lines of concurrent writers stay whole). False when it
    /// could not; `appendHistoryLine` says why.
    @discardableResult
    public func appendHistory(_ e: HistoryEntry) -> Bool {
        (try? appendHistoryLine(e)) != nil
    }

    /// Appends one JSON line, or throws naming history.jsonl and the reason (disk full,
    /// read-only): the daemon keeps the line and appends it later. A short write (disk full
    /// mid-line) is cut back, so no partial line stays in the file to swallow the next one.
    public func appendHistoryLine(_ e: HistoryEntry) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let line = Array(try enc.encode(e)) + [0x0a]
        let fd = try OwnedFD.open(historyPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        let before = Int64(try Sys.fstat(fd.raw, display: historyPath).st_size)
        do { try Sys.writeAll(fd.raw, line, display: historyPath) } catch {
            // Best effort: if even the cut fails, readers skip the one unreadable line it leaves.
            try? Sys.truncate(fd.raw, to: before, display: historyPath)
            throw error
        }
    }

    /// The last history lines (at most the last 64 KiB), parsed; unreadable lines are skipped.
    /// Enough to tell whether an event was already recorded, without reading a long history.
    /// Empty when there is no history (or it cannot be read: the caller then records again).
    public func historyTail(bytes: Int = 64 << 10) -> [HistoryEntry] {
        guard let fd = try? OwnedFD.open(historyPath, O_RDONLY | O_CLOEXEC) else { return [] }
        guard let size = try? Int(Sys.fstat(fd.raw, display: historyPath).st_size), size > 0 else { return [] }
        let start = max(0, size - bytes)
        var buf = [UInt8](repeating: 0, count: size - start)
        let n =
            (try? buf.withUnsafeMutableBytes {
                try Sys.pread(fd.raw, $0.baseAddress!, $0.count, at: Int64(start), display: historyPath)
            }) ?? 0
        guard n > 0 else { return [] }
        let dec = JSONDecoder()
        return buf[0..<n].split(separator: 0x0a).compactMap { try? dec.decode(HistoryEntry.self, from: Data($0)) }
    }

    /// Which file status.json is now (device, inode), nil when there is none. Every write
    /// replaces it by a new file (`writeFileAtomically`), so a different identity means some
    /// program wrote it since.
    public func statusFileID() -> FileID? {
        guard let st = try? Sys.lstat(statusPath) else { return nil }
        return FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    public struct FileID: Equatable, Sendable {
        public var device: UInt64
        public var inode: UInt64
    }
}

/// status.json as the daemon writes it: `ClientStatus`, plus per type the `retrying` marker
/// (packages left in the inbox after a transient error). `ClientStatus` itself (CourierCore,
/// read by push, select and report) is unchanged: decoders ignore the extra key.
enum StatusDocument {
    static func encode(_ s: ClientStatus, retrying: [String: [String]]) -> [UInt8] {
        if retrying.isEmpty { return s.encoded() }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        guard let d = try? enc.encode(Document(status: s, retrying: retrying)) else { return s.encoded() }
        return Array(d) + [0x0a]
    }

    struct Document: Encodable {
        let status: ClientStatus
        let retrying: [String: [String]]
        enum Key: String, CodingKey { case format, host, updated, types }
        func encode(to encoder: any Encoder) throws {
            // ClientStatus's own keys first (whatever they are), then `types` again with the marker.
            try status.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            var types: [String: TypeDocument] = [:]
            for (t, ts) in status.types { types[t] = TypeDocument(base: ts, retrying: retrying[t] ?? []) }
            try c.encode(types, forKey: .types)
        }
    }

    struct TypeDocument: Encodable {
        let base: ClientStatus.TypeStatus
        let retrying: [String]
        enum Key: String, CodingKey { case retrying }
        func encode(to encoder: any Encoder) throws {
            try base.encode(to: encoder)
            guard !retrying.isEmpty else { return }
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(retrying, forKey: .retrying)
        }
    }
}
