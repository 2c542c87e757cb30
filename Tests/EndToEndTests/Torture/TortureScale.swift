import Foundation

/// The torture suites (issue #15) run twice as large in `make torture` as in `make test`:
/// `COURIER_TORTURE=full` selects the full sizes (kills, packages, soak minutes); anything else the
/// short ones, sized so that all of them together add a few minutes to `make test`.
/// Every torture suite's name ends in `TortureTests`, so that `make torture` can select them all.
enum Torture {
    static let isFull: Bool = ProcessInfo.processInfo.environment["COURIER_TORTURE"] == "full"

    /// `short` in `make test`, `full` in `make torture`.
    static func size(short: Int, full: Int) -> Int { isFull ? full : short }

    /// A line for docs/RELIABILITY.md: what ran and what held. Printed, and appended to
    /// $COURIER_TORTURE_LOG when set (`make torture` collects them).
    static func report(_ line: String) {
        let text = "TORTURE \(isFull ? "full" : "short"): \(line)"
        print(text)
        if let path = ProcessInfo.processInfo.environment["COURIER_TORTURE_LOG"], !path.isEmpty,
            let h = FileHandle(forWritingAtPath: path)
                ?? {
                    FileManager.default.createFile(atPath: path, contents: nil)
                    return FileHandle(forWritingAtPath: path)
                }()
        {
            h.seekToEndOfFile()
            h.write(Data((text + "\n").utf8))
            h.closeFile()
        }
    }
}
