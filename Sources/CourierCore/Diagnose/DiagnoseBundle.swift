@preconcurrency import Glibc
import SystemPackage

/// What `<program> diagnose` gathers for support, written as one `.tar.gz`: every member is
/// text, redacted (``Redactor``) and escaped before it is added, under one top directory named
/// like the archive, with `README.txt` as its index. Each program adds its own members
/// (config, status, logs, locks, directories); the shared ones come from ``SystemFacts``.
///
/// Nothing here throws while collecting: a file or directory that cannot be read becomes a
/// line in the member and in README's notes, so a broken installation, which is when support
/// needs the archive, still yields one. Only writing the archive can fail, and then nothing is
/// left behind (a dot-named temporary, renamed into place when complete, mode 0600).
public final class DiagnoseBundle {
    public struct Member {
        public var name: String
        public var text: String
        public var about: String
    }

    public let program: String
    public let created: Int64
    public let host: String
    public private(set) var members: [Member] = []
    public private(set) var notes: [String] = []
    public private(set) var redactions = 0
    /// Bytes kept of one file (status, index, reasons); logs are cut by lines.
    public var fileLimit = 1 << 20

    public init(program: String) {
        self.program = program
        created = Int64(time(nil))
        host = Sys.hostName()
    }

    /// `courier-inboxd-diagnose-<host>-<UTC time>`: the default file name without `.tar.gz`,
    /// and the archive's top directory. Untrusted characters of the host name become `_`.
    public var baseName: String {
        let stamp = RFC3339.format(created).filter { $0 != "-" && $0 != ":" }
        let safeHost = String(
            host.unicodeScalars.map { u -> Character in
                (u.isASCII && (u.properties.isAlphabetic || u.properties.numericType != nil || u == "." || u == "-"))
                    ? Character(u) : "_"
            })
        return "\(program)-diagnose-\(safeHost.isEmpty ? "unknown" : safeHost)-\(stamp)"
    }

    public func note(_ s: String) { notes.append(s) }

    /// Loads the program's configuration and records whether it loads (`config/check.txt`);
    /// nil when it does not — then its directories are not examined, and README.txt says so.
    public func checkConfig<C>(_ load: () throws -> C) -> C? {
        let about = "whether the configuration loads"
        do {
            let c = try load()
            add("config/check.txt", "configuration loads: ok\n", about: about)
            return c
        } catch let e as CourierError {
            add("config/check.txt", "configuration does not load: \(e.description)\n", about: about)
            note("the configuration does not load, so its directories are not examined: \(e.message)")
        } catch {
            add("config/check.txt", "configuration does not load: \(error)\n", about: about)
            note("the configuration does not load, so its directories are not examined")
        }
        return nil
    }

    public enum Redaction { case config, text }

    /// Adds a text member, redacted. `about` is its line in README.txt.
    public func add(_ name: String, _ text: String, about: String, redact: Redaction = .text) {
        let r = redact == .config ? Redactor.config(text) : Redactor.text(text)
        redactions += r.count
        members.append(
            Member(name: name, text: r.text.hasSuffix("\n") || r.text.isEmpty ? r.text : r.text + "\n", about: about))
    }

    /// Adds text as written (a file, a log's tail): redacted first, then each line escaped. In that
    /// order because the redactor must see the text as written: escaped first, a tab would become
    /// the two characters `\t` and hide `password<TAB>= "x"` from it.
    func addRaw(_ name: String, header: String, _ raw: String, about: String, redact: Redaction) {
        let r = redact == .config ? Redactor.config(raw) : Redactor.text(raw)
        redactions += r.count
        let text = header + Escape.lines(r.text)
        members.append(
            Member(name: name, text: text.hasSuffix("\n") || text.isEmpty ? text : text + "\n", about: about))
    }

    /// Adds a file's content (its first `fileLimit` bytes), redacted, each line escaped; a
    /// missing or unreadable file becomes a member saying why.
    public func addFile(_ name: String, path: String, about: String, redact: Redaction = .text, optional: Bool = false)
    {
        do {
            let b = try readHead(path)
            addRaw(
                name, header: "# \(Escape.text(path))\n", String(decoding: b, as: UTF8.self), about: about,
                redact: redact)
        } catch let e as CourierError {
            if optional, (e.cause as? Errno) == .noSuchFileOrDirectory {
                add(name, "# \(Escape.text(path)): not present\n", about: about)
            } else {
                add(name, "# \(Escape.text(path)): cannot read: \(e.message)\n", about: about)
                note("\(name): cannot read \(Escape.text(path)): \(e.message)")
            }
        } catch {
            add(name, "# \(Escape.text(path)): cannot read: \(error)\n", about: about)
        }
    }

    func readHead(_ path: String) throws -> [UInt8] {
        let fd = try OwnedFD.open(path, O_RDONLY)
        var buf = [UInt8](repeating: 0, count: fileLimit)
        let n = try buf.withUnsafeMutableBytes { try Sys.readFully(fd.raw, $0.baseAddress!, $0.count, display: path) }
        var out = Array(buf[0..<n])
        if n == fileLimit { out += Array("\n… (cut after \(fileLimit) bytes)\n".utf8) }
        return out
    }

    /// The last `lines` lines of each log file, or a member saying there is none (the journal
    /// is not read: `journalctl -u <unit>` is for the operator to add).
    public func addLogs(_ paths: [String], lines: Int) {
        if paths.isEmpty {
            add(
                "logs/NONE.txt",
                """
                No log file was given or found, so no log lines are included.
                \(program) logs to standard error; under systemd that is the journal, which diagnose does not read.
                Add it yourself:  journalctl -u \(program) -n \(lines) --no-pager > journal.txt
                or run diagnose with --log-file FILE for a --log-file the program writes.
                """, about: "why no log lines are included")
            note("no log file: see logs/NONE.txt")
            return
        }
        for (i, p) in paths.enumerated() {
            let base = p.split(separator: "/").last.map(String.init) ?? "log"
            let name = "logs/\(i + 1)-\(Escape.text(base).filter { $0 != "/" && $0 != "\\" }).tail"
            do {
                let tail = try Sys.tailLines(p, lines: lines)
                addRaw(
                    name, header: "# last \(tail.count) line(s) of \(Escape.text(p))\n", tail.joined(separator: "\n"),
                    about: "the last \(lines) lines of \(Escape.text(p))", redact: .text)
            } catch let e as CourierError {
                add(
                    name, "# \(Escape.text(p)): cannot read: \(e.message)\n",
                    about: "log \(Escape.text(p)) (unreadable)")
                note("log \(Escape.text(p)): \(e.message)")
            } catch {
                add(name, "# \(Escape.text(p)): cannot read: \(error)\n", about: "log (unreadable)")
            }
        }
    }

    /// A directory's entries with type, size and age (names escaped), or why it cannot be listed.
    public func listing(_ path: String, limit: Int = 500) -> String {
        do {
            let fd = try OwnedFD.openDirectory(path)
            let entries = try Sys.listDirectory(fd.raw, display: path).sorted { $0.name < $1.name }
            var out = "# \(Escape.text(path)): \(entries.count) entr\(entries.count == 1 ? "y" : "ies")\n"
            let now = Int64(time(nil))
            for e in entries.prefix(limit) {
                let shown = Escape.text(e.name)
                if let st = try? Sys.lstatat(fd.raw, e.name, display: path) {
                    let kind: String
                    switch st.st_mode & S_IFMT {
                    case S_IFDIR: kind = "dir"
                    case S_IFLNK: kind = "link -> " + Escape.text(Sys.readLink(path + "/" + e.name) ?? "?")
                    case S_IFREG: kind = "file"
                    default: kind = "other"
                    }
                    out +=
                        "\(shown)  \(kind)  \(st.st_size) bytes  mode \(String(st.st_mode & 0o7777, radix: 8))  \(now - Int64(st.st_mtim.tv_sec)) s old\n"
                } else {
                    out += "\(shown)  (cannot stat)\n"
                }
            }
            if entries.count > limit { out += "… \(entries.count - limit) more\n" }
            return out
        } catch let e as CourierError {
            note("cannot list \(Escape.text(path)): \(e.message)")
            return "# \(Escape.text(path)): cannot list: \(e.message)\n"
        } catch {
            return "# \(Escape.text(path)): cannot list: \(error)\n"
        }
    }

    /// The public keys of a trust path (a `.pub` file or a directory of them): key ids and the
    /// public key lines. Never anything else from the directory: a private key put there by
    /// mistake is named, not copied.
    public func trustKeys(_ path: String) -> String {
        var out = "# trust: \(Escape.text(path))\n"
        var files: [String] = []
        if Sys.isDirectory(path) {
            do { files = try Sys.listDirectory(path).sorted().map { path + "/" + $0 } } catch let e as CourierError {
                return out + "cannot list: \(e.message)\n"
            } catch { return out + "cannot list\n" }
        } else {
            files = [path]
        }
        for f in files {
            let shown = Escape.text(f)
            if f.hasSuffix(".pub") {
                do {
                    let k = try PublicKey.load(f)
                    out += "\(shown): key id \(k.keyID): \(Escape.text(k.fileText.trimming("\n")))\n"
                } catch let e as CourierError { out += "\(shown): not a usable public key: \(e.message)\n" } catch {}
            } else if let b = try? Sys.readFile(f, limit: 64 << 10),
                String(decoding: b, as: UTF8.self).contains(SigningKey.tag)
            {
                out +=
                    "\(shown): A PRIVATE SIGNING KEY in the trust directory (content not included; remove it from clients)\n"
                note("a private signing key is in the trust path: \(shown)")
            } else {
                out += "\(shown): not a .pub file (ignored by the trust store except 'revoked')\n"
            }
        }
        return out
    }

    /// The public half of signing keys, by reading each key in this process: the key id and
    /// public key line only.
    public func signingKeys(_ paths: [String]) -> String {
        var out = ""
        for p in paths {
            do {
                let k = try SigningKey.load(p)
                out +=
                    "\(Escape.text(p)): signing key id \(k.keyID); public: \(Escape.text(k.publicKey.fileText.trimming("\n")))\n"
            } catch let e as CourierError {
                out += "\(Escape.text(p)): cannot read: \(e.message)\n"
                note("signing key \(Escape.text(p)): \(e.message)")
            } catch {}
        }
        return out
    }

    func readme(commandLine: String) -> String {
        var out = """
            \(program) diagnose archive
            ================================
            Courier \(CourierVersion.string), host \(Escape.text(host)), made \(RFC3339.format(created))
            command: \(commandLine)

            Secrets were removed before anything was written: values of keys named like password,
            secret, token, passphrase, auth, credential or private; URL user:password@; Bearer
            tokens; private key contents (only public keys and key ids are included).
            \(redactions) value(s) were redacted. Read the files before sending them: a secret
            without such a name (a bare password as a command argument) cannot be recognised.

            Files:
            """
        out += "\n"
        for m in members { out += "  \(m.name)  \(m.about)\n" }
        out += "\nNotes (what could not be gathered):\n"
        out += notes.isEmpty ? "  none\n" : notes.map { "  - \($0)\n" }.joined()
        return out
    }

    /// The default output path: `./<baseName>.tar.gz`.
    public var defaultOutput: String { "./\(baseName).tar.gz" }

    /// Writes the archive atomically (mode 0600: it shows the machine's layout), gzip so that
    /// any `tar` reads it. Returns the path written.
    @discardableResult
    public func write(to output: String?, commandLine: String) throws -> String {
        let path = output ?? defaultOutput
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty else {
            throw CourierError(.usage, "\(Escape.text(path)): names a directory, not an archive file")
        }
        let tmp = (dir.isEmpty ? "" : dir) + "/.\(name).tmp-\(Sys.processID())"
        let fd = try OwnedFD.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        do {
            let w = try ArchiveWriter(fd: fd.raw, display: tmp, compression: .gzip)
            let top = baseName
            try w.writeHeader(path: top, type: .directory, permissions: 0o700, size: 0, mtime: created)
            var dirs: Set<String> = []
            let all = [Member(name: "README.txt", text: readme(commandLine: commandLine), about: "")] + members
            for m in all {
                let parts = m.name.split(separator: "/").dropLast()
                var acc = top
                for p in parts {
                    acc += "/" + p
                    if dirs.insert(acc).inserted {
                        try w.writeHeader(path: acc, type: .directory, permissions: 0o700, size: 0, mtime: created)
                    }
                }
                try w.writeFile(path: top + "/" + m.name, bytes: Array(m.text.utf8), permissions: 0o600, mtime: created)
            }
            try w.finish()
            try Sys.fsync(fd.raw, display: tmp)
        } catch {
            _ = consume fd  // closed before the partial archive is removed
            try? Sys.unlink(tmp)
            throw error
        }
        _ = consume fd  // closed before the rename
        do { try Sys.rename(tmp, path) } catch {
            try? Sys.unlink(tmp)
            throw error
        }
        Sys.fsyncDirectory(dir.isEmpty ? "/" : dir)
        return path
    }
}
