/// A path as the bytes it is on disk, for sets, dictionaries and comparisons.
///
/// Swift's `String` compares and hashes by Unicode canonical equivalence: `"caf\u{E9}"` (NFC)
/// `==` `"cafe\u{301}"` (NFD), and a `Set<String>` holds only one of them. Linux file systems
/// store names as bytes, where these are two different names, and FORMAT §8 says paths compare
/// as bytes. Keying on `String` therefore merged two signed paths into one directory, or took
/// one file for the other (issue #11.2). Every collection of paths in CourierCore keys on this.
public struct PathKey: Hashable, Comparable, Sendable {
    public let bytes: [UInt8]

    public init<S: StringProtocol>(_ s: S) { bytes = Array(s.utf8) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Byte-wise order: the order of `files` in a manifest (Python's `sorted(key=str.encode)`).
    public static func < (a: PathKey, b: PathKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }
}

extension StringProtocol {
    /// Byte equality, not canonical equivalence (see `PathKey`).
    public func sameBytes<T: StringProtocol>(_ other: T) -> Bool { utf8.elementsEqual(other.utf8) }
}
