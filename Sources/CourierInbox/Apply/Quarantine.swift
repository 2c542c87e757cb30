#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CourierCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Refused packages leave the inbox for `quarantine/`, each with `<name>.reason.json` saying
/// what, why and when. The reason is written first, then the package renamed, so a crash in
/// between leaves the package in the inbox (it is refused again) rather than a package with no
/// reason.
public struct Quarantine: Sendable {
    public let dir: String

    public struct Reason: Codable, Sendable {
        public var package: String
        public var code: String
        public var reason: String
        public var at: String
        public var type: String?
        public var revision: UInt64?
    }

    @discardableResult
    public func put(_ packagePath: String, code: CourierError.Code, reason: String, type: String?, revision: UInt64?) throws -> String {
        try Sys.mkdirs(dir)
        let name = String(packagePath.split(separator: "/").last ?? "package")
        var dest = dir + "/" + name
        if Sys.exists(dest) { dest = dir + "/\(name).\(time(nil))-\(getpid())" }
        let r = Reason(package: name, code: code.name, reason: reason, at: RFC3339.format(Int64(time(nil))), type: type, revision: revision)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try Sys.writeFileAtomically(dest + ".reason.json", Array(try enc.encode(r)) + [0x0a])
        do { try Sys.rename(packagePath, dest) }
        catch let e as CourierError where (e.cause as? Errno) == .improperLink {
            // Inbox and quarantine on different file systems. Something other than a regular
            // file (a symlink, a FIFO) is not copied — that would follow or read it — but removed.
            if let st = try Sys.lstat(packagePath), st.st_mode & S_IFMT != S_IFREG {
                try Sys.unlink(packagePath)
                return dest
            }
            // A regular file: copy, then remove.
            let src = try Sys.open(packagePath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            defer { Sys.close(src) }
            let dst = try Sys.open(dest, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            defer { Sys.close(dst) }
            try TreeCopier.copyData(src, dst, size: Int(try Sys.fstat(src, display: packagePath).st_size), src: packagePath, dst: dest)
            try Sys.unlink(packagePath)
        }
        return dest
    }
}

import SystemPackage
