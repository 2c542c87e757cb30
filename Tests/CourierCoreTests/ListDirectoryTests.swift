import CourierCore
import Foundation
import Glibc
import Testing

/// `Sys.listDirectory` on a directory large enough to fill readdir's buffer (about 32 KiB of
/// records): the last record in the buffer is short, and copying its whole 256-byte `d_name` read
/// past the buffer — AddressSanitizer found it in courier-inboxd (`make test-asan`), and this test
/// reproduces it there. In any build it checks the names and types that come back.
struct ListDirectoryTests {
    @Test func everyNameAndTypeOfALargeDirectory() throws {
        let ws = Workspace("listdir")
        let dir = ws.path("d")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var expected: [String: UInt8] = [:]
        for i in 0..<3000 {
            // Names of 1 to 12 bytes: records of different lengths, so the buffer's last one varies.
            let name = String(repeating: "n", count: i % 12) + String(i)
            if i % 10 == 0 {
                try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: false)
                expected[name] = UInt8(DT_DIR)
            } else {
                #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: nil))
                expected[name] = UInt8(DT_REG)
            }
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        try #require(fd >= 0)
        defer { close(fd) }
        let listed = try Sys.listDirectory(fd, display: dir)
        #expect(listed.count == expected.count)
        var got: [String: UInt8] = [:]
        for e in listed { got[e.name] = e.type }
        #expect(got == expected)
        #expect(try Sys.listDirectory(dir).sorted() == expected.keys.sorted())
    }
}
