import ArgumentParser
import CourierCore

/// The options every `<program> diagnose` shares, and the steps they share: the machine's
/// facts first, the program's own members in between (`body`), the archive last. A new program
/// (courier-pull) gets a diagnose command with `@OptionGroup var common: DiagnoseOptions` and one
/// call to ``run(program:_:)``.
public struct DiagnoseOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Write the archive here (default: ./<program>-diagnose-<host>-<UTC time>.tar.gz).", valueName: "FILE"))
    public var output: String?
    @Option(help: ArgumentHelp("Log lines to include from the end of each log file.", valueName: "N"))
    public var lines: Int = 500
    @Option(
        name: .customLong("log-file"),
        help: ArgumentHelp(
            "A log file the program writes (its --log-file); repeatable. Default: the program's usual log file under /var/log/courier, when it exists.",
            valueName: "FILE"))
    public var logFiles: [String] = []

    public init() {}

    public func validate() throws {
        if lines < 0 || lines > 1_000_000 { throw ValidationError("--lines must be between 0 and 1000000") }
    }

    /// The log files to read: those given, else the defaults that exist.
    public func logs(defaults: [String]) -> [String] {
        logFiles.isEmpty ? defaults.filter { Sys.exists($0) } : logFiles
    }

    /// Builds the archive: system facts, `body`'s members, logs, then writes it and prints
    /// its path on stdout (the one line a script needs). `defaultLogs`: where the program's
    /// shipped units and examples put its log file.
    public func run(program: String, defaultLogs: [String] = [], _ body: (DiagnoseBundle) -> Void) throws {
        let b = DiagnoseBundle(program: program)
        b.add(
            "versions.txt", SystemFacts.versions(), about: "--version of each Courier program installed beside this one"
        )
        b.add(
            "system.txt", SystemFacts.system(),
            about: "kernel (uname), libarchive version, user, inotify and file limits, load")
        body(b)
        b.add(
            "processes.txt", SystemFacts.courierProcesses(),
            about: "courier-* processes running now, with their command lines (redacted)")
        b.addLogs(logs(defaults: defaultLogs), lines: lines)
        let cmd = CommandLine.arguments.map { Escape.text($0) }.joined(separator: " ")
        let path = try b.write(to: output, commandLine: Redactor.text(cmd).text)
        print(path)
    }
}
