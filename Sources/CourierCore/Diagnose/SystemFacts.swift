import CArchive
@preconcurrency import Glibc
import SystemPackage

extension Sys {
    /// `uname(2)`: the kernel's name, release, version and machine, as `uname -a` shows them.
    public static func kernelDescription() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "uname failed: \(Errno(rawValue: errno))" }
        func field<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { b in String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        return [field(u.sysname), field(u.nodename), field(u.release), field(u.version), field(u.machine)].joined(
            separator: " ")
    }

    /// The last `lines` lines of a file, reading at most its last `maxBytes`: a log of any size
    /// costs one bounded read. The first line may be cut when the limit falls inside it.
    public static func tailLines(_ path: String, lines: Int, maxBytes: Int = 4 << 20) throws -> [String] {
        let fd = try OwnedFD.open(path, O_RDONLY)
        let size = Int(try Sys.fstat(fd.raw, display: path).st_size)
        let start = max(0, size - maxBytes)
        try Sys.seek(fd.raw, to: Int64(start), display: path)
        var buf = [UInt8](repeating: 0, count: size - start)
        let got = try buf.withUnsafeMutableBytes { try readFully(fd.raw, $0.baseAddress!, $0.count, display: path) }
        var all = String(decoding: buf[0..<got], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        if all.last == "" { all.removeLast() }
        return Array(all.suffix(lines))
    }
}

/// Facts about the machine and the processes around a Courier program, for `diagnose`. Every
/// function returns text and never throws: what cannot be read is said in the text.
public enum SystemFacts {
    /// libarchive's version and the libraries it was built with (`archive_version_details`).
    public static var libarchiveVersion: String { String(cString: archive_version_details()) }

    /// Space and inodes of the file system holding each path, one line each.
    public static func diskUsage(_ dirs: [(label: String, path: String)]) -> String {
        var out = "# label: path — free/total bytes (free %), free/total inodes; the file system holding the path\n"
        for (label, path) in dirs {
            do {
                let st = try Sys.fileSystemStats(path)
                let block = Int64(st.f_frsize)
                let total = Int64(st.f_blocks) * block
                let avail = Int64(st.f_bavail) * block
                let pct = total > 0 ? Double(avail) * 100 / Double(total) : 0
                let inodes =
                    st.f_files > 0
                    ? "\(st.f_favail)/\(st.f_files) inodes free"
                    : "inodes not counted by this file system"
                out +=
                    "\(label): \(Escape.text(path)) — \(human(avail))/\(human(total)) free (\(String(format1(pct)))%), \(inodes)\n"
            } catch let e as CourierError {
                out += "\(label): \(Escape.text(path)) — cannot read: \(e.message)\n"
            } catch {
                out += "\(label): \(Escape.text(path)) — cannot read: \(error)\n"
            }
        }
        return out
    }

    static func format1(_ v: Double) -> String {
        let t = Int((v * 10).rounded())
        return "\(t / 10).\(t % 10)"
    }

    /// Who holds an `flock` on `path`: the kernel's `/proc/locks` entries for the file's device
    /// and inode (so a lock without a pid file is found too), each holder's command line
    /// (redacted), and the pid the file itself names, if any (courier-stage writes its pid).
    public static func lockHolder(_ path: String) -> String {
        var out = "lock file: \(Escape.text(path))\n"
        guard let st = try? Sys.lstat(path) else {
            return out + "not present (no run has taken the lock yet, or the path is wrong)\n"
        }
        if let b = try? Sys.readFile(path, limit: 256) {
            let text = String(decoding: b, as: UTF8.self).trimming(" \n")
            out += "content: \(text.isEmpty ? "(empty)" : Escape.text(text))\n"
        }
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        guard let locks = try? Sys.readFile("/proc/locks", limit: 8 << 20) else {
            return out + "/proc/locks cannot be read: the holder is unknown\n"
        }
        var holders: [String] = []
        for line in String(decoding: locks, as: UTF8.self).split(separator: "\n") {
            var f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 6 else { continue }
            let waiting = f[1] == "->"
            if waiting { f.remove(at: 1) }
            let id = f[5].split(separator: ":")
            guard id.count == 3, UInt64(id[0], radix: 16) == major, UInt64(id[1], radix: 16) == minor,
                UInt64(id[2]) == UInt64(st.st_ino)
            else { continue }
            let pid = f[4]
            holders.append("\(waiting ? "waiting" : "held"): \(f[1]) \(f[3]) by pid \(pid): \(commandLine(pid: pid))")
        }
        out +=
            holders.isEmpty ? "not held now (the kernel lists no lock on it)\n" : holders.joined(separator: "\n") + "\n"
        return out
    }

    /// A process's command line, arguments separated by spaces, escaped and redacted.
    public static func commandLine(pid: String) -> String {
        guard let b = try? Sys.readFile("/proc/\(pid)/cmdline", limit: 64 << 10), !b.isEmpty else {
            return "(command line not readable)"
        }
        let args = b.split(separator: 0, omittingEmptySubsequences: false).map { Escape.bytes($0) }
        return Redactor.text(args.joined(separator: " ").trimming(" ")).text
    }

    /// Running processes whose name starts with `courier-`: pid, state and command line.
    public static func courierProcesses() -> String {
        guard let pids = try? Sys.listDirectory("/proc") else { return "/proc cannot be listed\n" }
        var out = ""
        for pid in pids.filter({ Int($0) != nil }).sorted(by: { Int($0)! < Int($1)! }) {
            guard let comm = try? Sys.readFile("/proc/\(pid)/comm", limit: 64) else { continue }
            let name = String(decoding: comm, as: UTF8.self).trimming("\n")
            guard name.hasPrefix("courier-") else { continue }
            out += "pid \(pid) \(Escape.text(name)): \(commandLine(pid: pid))\n"
        }
        return out.isEmpty ? "no courier-* process is running\n" : out
    }

    /// `--version` of every Courier program beside this one (the same installation).
    public static func versions(
        programs: [String] = ["courier-stage", "courier-deliver", "courier-inboxd", "courier-pull", "courier-tuf"]
    ) -> String {
        let me = Sys.readLink("/proc/self/exe") ?? CommandLine.arguments[0]
        let dir = me.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var out = "this program: \(Escape.text(me)) (Courier \(CourierVersion.string))\n"
        for p in programs {
            let path = (dir.isEmpty ? "." : dir) + "/" + p
            guard Sys.isExecutable(path) else {
                out += "\(p): not installed beside it\n"
                continue
            }
            do {
                let r = try ChildProcess.run(
                    [path, "--version"], environment: ChildProcess.currentEnvironment(), timeout: 10, keepTail: 1024)
                let text = String(decoding: r.output, as: UTF8.self).trimming(" \n")
                out +=
                    "\(p): \(Escape.text(text))\(r.ok ? "" : " (exit \(r.status)\(r.timedOut ? ", timed out" : ""))")\n"
            } catch let e as CourierError {
                out += "\(p): cannot run: \(e.message)\n"
            } catch {
                out += "\(p): cannot run: \(error)\n"
            }
        }
        return out
    }

    /// The kernel, libarchive, and limits that explain common failures.
    public static func system() -> String {
        var out = "kernel: \(Escape.text(Sys.kernelDescription()))\n"
        out += "libarchive: \(libarchiveVersion)\n"
        out += "host: \(Escape.text(Sys.hostName()))\n"
        out += "time: \(RFC3339.format(Int64(time(nil))))\n"
        out += "uid: \(Sys.userID()) euid: \(Sys.effectiveUserID()) gid: \(Sys.groupID())\n"
        for f in [
            "/proc/sys/fs/inotify/max_user_watches", "/proc/sys/fs/inotify/max_user_instances",
            "/proc/sys/fs/inotify/max_queued_events", "/proc/sys/fs/file-nr", "/proc/loadavg", "/proc/uptime",
        ] {
            let v =
                (try? Sys.readFile(f, limit: 4096)).map { String(decoding: $0, as: UTF8.self).trimming(" \n") }
                ?? "(not readable)"
            out += "\(f): \(Escape.text(v))\n"
        }
        if let rl = Sys.openFilesLimit() {
            out += "open files limit: \(rl.soft) (hard \(rl.hard))\n"
        }
        return out
    }
}
