@preconcurrency import Glibc
import SystemPackage

/// An open file descriptor with exactly one owner, which closes it when the owner's scope ends.
///
/// Why not swift-system's `FileDescriptor`: it is `Copyable` and closes only when told to, so
/// two copies can close the same number (the second close may hit a descriptor another thread
/// just opened) and a forgotten `close` leaks. `OwnedFD` is `~Copyable`: the compiler refuses a
/// second owner, a local one closes at the end of its scope (Swift destroys a non-copyable `let`
/// there, not after its last use, so `fd.raw` stays valid for the whole scope), and handing it
/// on is an explicit `consume`. Calls still take the raw number (`fd.raw`), borrowed for the
/// call, as swift-system's calls take `rawValue`.
///
/// Every descriptor Courier opens is born here (the openers below, `Sys.pipe`, the inotify and
/// socket calls); `scripts/check/libc-door.sh` keeps raw `Sys.close` inside `System/`.
public struct OwnedFD: ~Copyable, Sendable {
    /// The descriptor number, valid while this value lives. Never close it yourself.
    public let raw: Int32

    /// Takes ownership of a descriptor some call just returned (it must not have another owner).
    public init(adopting raw: Int32) {
        self.raw = raw
    }

    deinit {
        // close is not retried on EINTR on Linux: the descriptor is gone either way.
        _ = Glibc.close(raw)
    }

    /// Closes now, reporting a failure (EIO, ENOSPC on NFS) that a write cares about; the
    /// descriptor is released whatever close says. `display` names the file in the error.
    public consuming func close(display: String) throws {
        let r = raw
        discard self
        if Glibc.close(r) != 0 {
            let e = Errno(rawValue: errno)
            if e != .interrupted { throw CourierError.io("close", path: display, errno: e) }
        }
    }

    /// Gives the number up without closing it, for a new owner that closes it itself (a C
    /// library told to close it, `dup2` onto a child's standard stream). Rarely right.
    public consuming func release() -> Int32 {
        let r = raw
        discard self
        return r
    }
}

/// The openers: each returns an owner, so no caller writes `defer { close }` by hand.
extension OwnedFD {
    /// `open(2)` with `O_CLOEXEC` always added.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.open(path, flags, mode))
    }

    /// `openat(2)` relative to `dir`, with `O_CLOEXEC`; `display` names the file in errors.
    public static func open(
        at dir: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0, display: String? = nil
    ) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.openat(dir, name, flags, mode, display: display))
    }

    /// A directory by path (`O_RDONLY | O_DIRECTORY`).
    public static func openDirectory(_ path: String) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.openDirectory(path))
    }

    /// A directory relative to `dir`, never through a symlink at the last component.
    public static func openDirectory(at dir: Int32, _ name: String, display: String? = nil) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.openDirectoryAt(dir, name, display: display))
    }

    /// The same file once more, read-only, with a file position of its own (`Sys.reopen`).
    public func reopen(display: String) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.reopen(raw, display: display))
    }
}
