import CourierCore
import Foundation
import Testing

/// The `--help` of every program and subcommand, as the built binaries print it (and as
/// `make man` turns it into the man pages): exit-code lists that match what the programs can
/// return, and no line laid out by hand that ArgumentParser has to re-wrap.
@Suite struct HelpTextTests {
    static let programs = ["courier-stage", "courier-deliver", "courier-inboxd", "courier-pull"]

    /// The codes of `ExitStatus` a program cannot return, and why; every other one it can, and
    /// its `--help` must list it.
    static let cannotReturn: [String: Set<Int32>] = [
        // No test or apply command, no daemon.
        "courier-stage": [13, 15],
        // No source, no HTTP (9, 18, 19), no commands, no daemon, no lock: verify and copy only.
        "courier-deliver": [4, 9, 13, 15, 17, 18, 19],
        // Links no HTTP and has no source: the copiers fetch.
        "courier-inboxd": [4, 9, 18, 19],
        // No test or apply command, no daemon.
        "courier-pull": [13, 15],
    ]

    /// The help text before `USAGE:`, unwrapped: as written in the source, with a terminal so
    /// wide that ArgumentParser wraps nothing.
    static func rawHelp(_ args: [String]) throws -> String {
        let r = try Programs.run(args[0], Array(args.dropFirst()) + ["--help"], env: ["COLUMNS": "10000"])
        #expect(r.status == 0, "\(args): \(r.stderr)")
        return r.stdout.components(separatedBy: "\nUSAGE:").first ?? ""
    }

    static func subcommands(_ program: String) throws -> [String] {
        let help = try Programs.run(program, ["--help"], env: ["COLUMNS": "10000"]).stdout
        guard let section = help.components(separatedBy: "SUBCOMMANDS:\n").last else { return [] }
        return section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  "), let c = line.dropFirst(2).first, c.isLowercase else { return nil }
            return line.split(separator: " ").first.map(String.init)
        }
    }

    /// The codes an "Exit codes: 0 ok, 2 configuration (…), 16 …" paragraph lists.
    static func listedCodes(_ help: String) -> Set<Int32>? {
        guard let start = help.range(of: "Exit codes:") else { return nil }
        let paragraph = help[start.upperBound...].components(separatedBy: "\n\n")[0]
        var codes: Set<Int32> = []
        for item in paragraph.components(separatedBy: ", ") {
            let digits = item.drop { $0 == " " }.prefix { $0.isNumber }
            if let n = Int32(digits), item.drop(while: { $0 == " " }).dropFirst(digits.count).first == " " {
                codes.insert(n)
            }
        }
        return codes
    }

    @Test(arguments: programs) func topLevelHelpListsEveryCodeTheProgramCanReturn(_ program: String) throws {
        let listed = try #require(Self.listedCodes(try Self.rawHelp([program])), "\(program): no exit codes")
        let all = Set(ExitStatus.allCases.map(\.rawValue))
        let expected = all.subtracting(Self.cannotReturn[program]!)
        #expect(
            listed == expected,
            "\(program): missing \(expected.subtracting(listed).sorted()), extra \(listed.subtracting(expected).sorted())"
        )
    }

    @Test(arguments: programs) func subcommandListsAreWithinTheProgramsCodes(_ program: String) throws {
        let top = try #require(Self.listedCodes(try Self.rawHelp([program])))
        let subs = try Self.subcommands(program)
        #expect(subs.count >= 3, "\(program): \(subs)")
        for sub in subs where sub != "help" {
            guard let listed = Self.listedCodes(try Self.rawHelp([program, sub])) else { continue }
            #expect(listed.isSubset(of: top), "\(program) \(sub): \(listed.subtracting(top).sorted()) not in --help")
            #expect(listed.contains(0) && listed.contains(64), "\(program) \(sub): \(listed.sorted())")
        }
    }

    /// A paragraph of several lines is laid out by hand (examples, lists): each line must fit the
    /// 80 columns ArgumentParser wraps to, or it is broken again and leaves a ragged line. Only
    /// a paragraph of one line (prose joined in the source with `\`) may be longer: that one is
    /// flowed as a whole.
    @Test(arguments: programs + ["courier-tuf"]) func noHandLaidLineIsRewrapped(_ program: String) throws {
        var commands = [[program]]
        if program != "courier-tuf" {
            commands += try Self.subcommands(program).filter { $0 != "help" }.map { [program, $0] }
        }
        for args in commands {
            let help = try Self.rawHelp(args)
            for paragraph in help.components(separatedBy: "\n\n") {
                let lines = paragraph.split(separator: "\n")
                for line in lines where line.count > 79 && (lines.count > 1 || line.hasPrefix(" ")) {
                    Issue.record(
                        "\(args.joined(separator: " ")) --help: a hand-laid line of \(line.count) columns: \(line)")
                }
            }
        }
    }

    /// `courier-stage list --outbox outbox` printed "outbox outbox, index of …": the first line
    /// now names the index file by its absolute path.
    @Test func stageListNamesTheIndexByItsPath() throws {
        let t = TempDir()
        t.write("outbox/index.json", "{\"format\": 1, \"generated\": \"2026-11-29T19:00:00Z\", \"types\": {}}\n")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-stage")
        p.arguments = ["list", "--outbox", "outbox"]
        p.currentDirectoryURL = URL(fileURLWithPath: t.path)
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let first = text.split(separator: "\n").first.map(String.init) ?? ""
        #expect(
            first.hasPrefix("/") && first.hasSuffix("/outbox/index.json, generated 2026-11-29T19:00:00Z"), "\(text)")
        #expect(!text.contains("outbox outbox"))
    }
}
