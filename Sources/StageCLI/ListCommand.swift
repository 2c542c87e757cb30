import ArgumentParser
import CourierCLI
import CourierCore
import CourierStage

public struct ListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Show what an outbox holds: types, revisions, packages, sizes.",
        discussion: "Reads outbox/index.json, which every 'courier-stage run' that changes something rewrites.")

    @Option(help: ArgumentHelp("The outbox directory.", valueName: "DIR"))
    var outbox: String
    @Flag(help: "Print index.json as is.")
    var json = false

    public init() {}

    public func run() throws {
        try mapErrors("courier-stage list") {
            let ob = Outbox(root: outbox)
            guard Sys.exists(outbox + "/index.json") else {
                throw CourierError(
                    .io, "\(outbox)/index.json: no index; has 'courier-stage run' published anything here?")
            }
            let idx = try ob.readIndex()
            if json {
                print(String(decoding: idx.encoded(), as: UTF8.self), terminator: "")
                return
            }
            // The index file by its absolute path: "outbox outbox, …" read badly for `--outbox outbox`.
            print("\(Escape.text(Sys.absolutePath(outbox)))/index.json, generated \(idx.generated)")
            for (type, info) in idx.types.sorted(by: { $0.key < $1.key }) {
                print("\n\(type)  latest \(info.latest.map(String.init) ?? "-")")
                for r in info.revisions.reversed() {
                    let mark = r.revision == info.latest ? "*" : " "
                    print(" \(mark) \(r.revision)  created \(r.created)  \(r.files) files, \(human(Int64(r.bytes)))")
                    for p in r.packages {
                        let what = p.kind == .full ? "full" : "delta from \(p.base ?? 0)"
                        print("      \(p.file.split(separator: "/").last!)  \(what), \(human(p.size))")
                    }
                }
            }
        }
    }
}
