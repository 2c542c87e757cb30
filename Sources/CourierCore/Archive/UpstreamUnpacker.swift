import CArchive
@preconcurrency import Glibc
import SystemPackage

/// Unpacks a vendor's archive (a rules tarball, a zip of signatures) into a new tree on the
/// staging server. Nothing in it is trusted: the same rules as package extraction apply — paths
/// checked, created through directory fds with `O_NOFOLLOW|O_EXCL`, no links, devices or special
/// bits, bounded size and count — with two allowances that vendor archives need: directory
/// entries are fine, and a leading `./` is dropped.
public enum UpstreamUnpacker {
    public static func unpack(_ archivePath: String, into target: String, limits: Limits) throws {
        let reader = try ArchiveReader(path: archivePath, formats: .upstream)
        try Sys.mkdirs(target)
        let root = try OwnedFD.openDirectory(target)
        let rootfd = root.raw
        var entries = 0
        var total: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        func bad(_ name: String, _ why: String) -> CourierError {
            CourierError(.unsafeEntry, "\(archivePath): entry \(Escape.quoted(name)): \(why)")
        }
        while let h = try reader.next() {
            entries += 1
            if entries > limits.maxEntries {
                throw CourierError(.limit, "\(archivePath): more than \(limits.maxEntries) entries")
            }
            guard var name = h.path else {
                throw CourierError(
                    .unsafeEntry, "\(archivePath): entry \(Escape.quotedBytes(h.rawPath)): name is not valid UTF-8")
            }
            while name.hasPrefix("./") { name.removeFirst(2) }
            if h.fileType == COURIER_AE_IFDIR { while name.hasSuffix("/") { name.removeLast() } }
            if name.isEmpty || name == "." { continue }
            if let p = Names.pathProblem(name, maxBytes: limits.maxPathBytes) { throw bad(name, p) }
            if h.hardlink != nil { throw bad(name, "hard link") }
            if h.permissions & 0o7000 != 0 { throw bad(name, "setuid, setgid or sticky bit") }
            let comps = Names.components(name)
            switch h.fileType {
            case COURIER_AE_IFDIR:
                _ = try OwnedFD.openDirectoryChain(at: rootfd, comps, root: target)  // created, then closed
                continue
            case COURIER_AE_IFREG:
                break
            case COURIER_AE_IFLNK:
                throw bad(name, "symbolic link (vendor archives must hold only files and directories)")
            default:
                throw bad(name, "device, FIFO or socket")
            }
            let parent = try OwnedFD.openDirectoryChain(at: rootfd, Array(comps.dropLast()), root: target)
            let shown = Escape.text(target + "/" + name)
            let fd: OwnedFD
            do {
                fd = try OwnedFD.open(
                    at: parent.raw(or: rootfd), comps.last!, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600,
                    display: shown)
            } catch let e as CourierError where (e.cause as? Errno) == .fileExists { throw bad(name, "appears twice") }
            while true {
                let n = try reader.read(into: buffer)
                if n == 0 { break }
                total += Int64(n)
                if UInt64(total) > limits.maxTotalBytes {
                    throw CourierError(.limit, "\(archivePath): unpacks to more than \(limits.maxTotalBytes) bytes")
                }
                if total > 16 << 20, total / max(reader.compressedBytesRead, 1) > limits.maxExpansionRatio {
                    throw CourierError(
                        .limit, "\(archivePath): expands more than \(limits.maxExpansionRatio)× (compression bomb?)")
                }
                try Sys.writeAll(fd.raw, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), display: shown)
            }
            // Normalise modes: executable or not, nothing else carries over from a vendor.
            try Sys.fchmod(fd.raw, h.permissions & 0o111 != 0 ? 0o755 : 0o644, display: shown)
        }
    }
}
