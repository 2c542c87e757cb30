import CourierConfig
import CourierCore
import Foundation
import Testing

/// Configuration paths and delivery's status paths are normalised lexically, as Go's
/// `filepath.Clean`: `<inbox>/../state` is reported as the directory it names.
@Suite struct PathNormalisationTests {
    @Test(arguments: [
        ("/var/lib/courier/inbox/../state", "/var/lib/courier/state"),
        ("/var/lib/courier/inbox//../state/./status.json", "/var/lib/courier/state/status.json"),
        ("/etc/courier/./inbox/", "/etc/courier/inbox"),
        ("/..", "/"),
        ("/../a/../../b", "/b"),
        ("/", "/"),
        ("inbox/../state", "state"),
        ("../x/../../y", "../../y"),
        ("./", "."),
        ("a/..", "."),
    ])
    func lexical(_ c: (String, String)) {
        #expect(TableReader.lexicallyNormalized(c.0) == c.1, "\(c.0)")
    }

    /// `..` after a symlink is read as the kernel reads it (the state beside the inbox's target,
    /// where an existing install keeps it), and what does not exist yet lexically.
    @Test func dotDotAfterASymlinkIsTheKernels() throws {
        let t = StageWorkspace()
        try FileManager.default.createDirectory(atPath: t.path("data/c1/inbox"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: t.path("srv/c"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: t.path("srv/c/inbox"), withDestinationPath: t.path("data/c1/inbox"))
        let real = try #require(Sys.realPath(t.path("data/c1")))
        #expect(TableReader.normalized(t.path("srv/c/inbox/../state")) == real + "/state")
        #expect(TableReader.normalized(t.path("srv/c/inbox/./../state/./status.json")) == real + "/state/status.json")
        #expect(TableReader.normalized(t.path("srv/c/inbox/x")) == t.path("srv/c/inbox/x"))
        #expect(
            TableReader.normalized(t.path("nowhere/inbox/../state"))
                == TableReader.lexicallyNormalized(t.path("nowhere/state")))
    }
}
