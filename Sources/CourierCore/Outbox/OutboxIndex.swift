import FoundationEssentials

/// `outbox/index.json` (docs/OUTBOX.md): every type, its revisions and packages with sizes and
/// SHA-256, so that delivery tools and humans need not open packages to know what is there.
public struct OutboxIndex: Codable, Sendable, Equatable {
    public struct PackageInfo: Codable, Sendable, Equatable {
        /// Path relative to the outbox root: `<type>/<revision>/<file>`.
        public var file: String
        public var kind: Manifest.Kind
        public var base: UInt64?
        public var size: Int64
        public var sha256: String
    }
    public struct RevisionInfo: Codable, Sendable, Equatable {
        public var revision: UInt64
        public var created: String
        public var files: Int
        public var bytes: UInt64
        public var packages: [PackageInfo]
    }
    public struct TypeInfo: Codable, Sendable, Equatable {
        public var latest: UInt64?
        public var revisions: [RevisionInfo]
    }

    public var format: Int = 1
    public var generated: String
    public var types: [String: TypeInfo]

    public func encoded() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try! enc.encode(self)) + [0x0a]
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> OutboxIndex {
        do { return try JSONDecoder().decode(OutboxIndex.self, from: Data(bytes)) } catch {
            throw CourierError(.malformed, "\(path): not a valid outbox index: \(error)")
        }
    }
}
