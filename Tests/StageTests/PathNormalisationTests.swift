import CourierConfig
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
}
