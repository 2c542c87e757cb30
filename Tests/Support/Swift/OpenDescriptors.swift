import Foundation

/// The files this process holds open (read from /proc/self/fd) that lie under `dir`, deleted
/// ones included: how a test shows that a descriptor was closed (#17.1). Only paths under the
/// test's own directory count, so tests running at the same time in the process do not disturb it.
/// `dir` is resolved first (symlinks, `//`), as the kernel names the files: a TMPDIR through a
/// symlink would otherwise match nothing and every "nothing left open" check would pass blind.
public func openDescriptors(under dir: String) -> [String] {
    let dir = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
        .filter { $0 == dir || $0.hasPrefix(dir + "/") }
}
