/// The inotify mask bits Courier uses, as `UInt32` (Glibc imports them as `Int32`, and the kernel's
/// `inotify_event.mask` is a `uint32_t`). Spelled out here so that the parser and its tests do not
/// depend on how a C header's macros happen to be imported.
public enum InotifyMask {
    public static let access: UInt32 = 0x0000_0001
    public static let modify: UInt32 = 0x0000_0002
    public static let attrib: UInt32 = 0x0000_0004
    public static let closeWrite: UInt32 = 0x0000_0008
    public static let closeNoWrite: UInt32 = 0x0000_0010
    public static let open: UInt32 = 0x0000_0020
    public static let movedFrom: UInt32 = 0x0000_0040
    public static let movedTo: UInt32 = 0x0000_0080
    public static let create: UInt32 = 0x0000_0100
    public static let delete: UInt32 = 0x0000_0200
    public static let deleteSelf: UInt32 = 0x0000_0400
    public static let moveSelf: UInt32 = 0x0000_0800
    /// Sent by the kernel, never requested: the file system holding the watched object was unmounted.
    public static let unmount: UInt32 = 0x0000_2000
    /// Sent by the kernel, never requested, with `wd == -1`: the event queue overflowed and events
    /// were dropped. The only safe reaction is to list the directory again.
    public static let queueOverflow: UInt32 = 0x0000_4000
    /// Sent by the kernel when a watch is removed (explicitly, or because its object is gone).
    public static let ignored: UInt32 = 0x0000_8000
    /// Watch flag: fail with ENOTDIR unless the path is a directory.
    public static let onlyDir: UInt32 = 0x0100_0000
    public static let dontFollow: UInt32 = 0x0200_0000
    /// Event flag: the subject of the event is a directory.
    public static let isDir: UInt32 = 0x4000_0000

    /// Names of the set bits, for logs and test failure messages.
    public static func describe(_ mask: UInt32) -> String {
        let names: [(UInt32, String)] = [
            (access, "ACCESS"), (modify, "MODIFY"), (attrib, "ATTRIB"), (closeWrite, "CLOSE_WRITE"),
            (closeNoWrite, "CLOSE_NOWRITE"), (open, "OPEN"), (movedFrom, "MOVED_FROM"), (movedTo, "MOVED_TO"),
            (create, "CREATE"), (delete, "DELETE"), (deleteSelf, "DELETE_SELF"), (moveSelf, "MOVE_SELF"),
            (unmount, "UNMOUNT"), (queueOverflow, "Q_OVERFLOW"), (ignored, "IGNORED"), (isDir, "ISDIR"),
        ]
        let set = names.filter { mask & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? String(mask, radix: 16) : set.joined(separator: "|")
    }
}

/// One record of the kernel's inotify stream: `struct inotify_event { int wd; uint32_t mask,
/// cookie, len; char name[len]; }`.
///
/// The name is kept as the raw bytes the kernel gave (without the NUL padding): Linux file names
/// are bytes, not necessarily UTF-8, and decoding them lossily would turn an odd name into a
/// different, possibly existing, one. `name` decodes strictly and is nil for a non-UTF-8 name.
public struct InotifyEvent: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Watch descriptor the event belongs to; -1 for `IN_Q_OVERFLOW`.
    public var wd: Int32
    public var mask: UInt32
    /// Pairs an `IN_MOVED_FROM` with its `IN_MOVED_TO`; 0 otherwise.
    public var cookie: UInt32
    /// The entry name inside the watched directory, without padding; empty for events about the
    /// watched object itself.
    public var nameBytes: [UInt8]

    public init(wd: Int32, mask: UInt32, cookie: UInt32 = 0, nameBytes: [UInt8]) {
        self.wd = wd
        self.mask = mask
        self.cookie = cookie
        self.nameBytes = nameBytes
    }

    public init(wd: Int32, mask: UInt32, cookie: UInt32 = 0, name: String = "") {
        self.init(wd: wd, mask: mask, cookie: cookie, nameBytes: Array(name.utf8))
    }

    /// The name as a String, or nil when the bytes are not valid UTF-8.
    public var name: String? { String(validating: nameBytes, as: UTF8.self) }

    /// True when any of `bits` is set.
    public func has(_ bits: UInt32) -> Bool { mask & bits != 0 }

    public var description: String {
        let shown = name ?? "<\(nameBytes.count) bytes, not UTF-8>"
        return
            "inotify(wd \(wd), \(InotifyMask.describe(mask))\(cookie != 0 ? ", cookie \(cookie)" : "")\(shown.isEmpty ? "" : ", '\(shown)'"))"
    }
}

/// Turns the bytes `read()` returned from an inotify fd into events. Pure: no I/O, no state, so
/// tests feed it hand-built buffers.
///
/// The record is parsed byte by byte rather than by binding `inotify_event`: its `name` is a C
/// flexible array member that Swift does not import, and the buffer gives no alignment guarantee
/// once one walks past a name. Integers are in host byte order, as the kernel writes them.
public enum InotifyParser {
    /// Size of the fixed part of a record: `wd`, `mask`, `cookie`, `len`.
    public static let headerSize = 16

    /// The smallest buffer that can hold any one event (header + NAME_MAX + NUL). `read()` on an
    /// inotify fd fails with EINVAL when given less.
    public static let minimumReadSize = headerSize + 255 + 1

    /// Parses every complete record at the front of `bytes`. A trailing record whose header or name
    /// is cut off is not consumed: `consumed` is the offset of its first byte, so a caller that
    /// reads a stream can keep the tail and append the next read to it. The kernel itself never
    /// splits a record, but a parser that trusts that would read past the buffer the day it does.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> (events: [InotifyEvent], consumed: Int) {
        var events: [InotifyEvent] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            let wd = Int32(bitPattern: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let len = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard len <= bytes.count - nameStart else { break }  // truncated tail
            // The name is NUL-terminated and NUL-padded up to `len` (a multiple of 16 in practice);
            // a name that fills `len` without a NUL is taken whole.
            var nameEnd = nameStart
            while nameEnd < nameStart + len && bytes[nameEnd] != 0 { nameEnd += 1 }
            let name = Array(bytes[nameStart..<nameEnd])
            events.append(InotifyEvent(wd: wd, mask: mask, cookie: cookie, nameBytes: name))
            offset = nameStart + len
        }
        return (events, offset)
    }

    public static func parse(_ bytes: [UInt8]) -> (events: [InotifyEvent], consumed: Int) {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Builds the bytes of one record the way the kernel lays it out: the name NUL-terminated and
    /// padded to a multiple of `padding` bytes (0 bytes of name when the name is empty). For tests
    /// and tools that replay captured streams.
    public static func encode(_ event: InotifyEvent, padding: Int = 16) -> [UInt8] {
        var len = 0
        if !event.nameBytes.isEmpty {
            len = event.nameBytes.count + 1
            if padding > 1 { len = (len + padding - 1) / padding * padding }
        }
        var out: [UInt8] = []
        out.reserveCapacity(headerSize + len)
        for v in [UInt32(bitPattern: event.wd), event.mask, event.cookie, UInt32(len)] {
            withUnsafeBytes(of: v) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: event.nameBytes)
        out.append(contentsOf: [UInt8](repeating: 0, count: len - event.nameBytes.count))
        return out
    }
}
