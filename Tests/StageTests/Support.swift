import CourierCore
import CourierStage
@_exported import CourierTestSupport
import Foundation
import Logging
import Testing

final class StageWorkspace {
    let root: String
    let key: SigningKey
    init() {
        root =
            FileManager.default.temporaryDirectory.path
            + "/courier-stage-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        key = SigningKey()
        try! key.write(to: root + "/stage.key")
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ rel: String) -> String { root + "/" + rel }

    func write(_ rel: String, _ text: String) {
        let full = path(rel)
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func config(_ typesTOML: String, extra: String = "") throws -> StageConfig {
        let text = """
            outbox = "outbox"
            key = "stage.key"
            state_dir = "state"
            \(extra)
            \(typesTOML)
            """
        write("stage.toml", text)
        return try StageConfig.load(path("stage.toml"))
    }

    func listing(_ rel: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: path(rel)) else { return [] }
        return (e.allObjects as! [String]).sorted()
    }
}

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

func run(_ config: StageConfig, only: [String] = [], now: Int64? = nil) async throws -> CycleReport {
    let r = StageRunner(config: config, logger: quietLogger)
    if let n = now { r.clock = { n } }
    return try await r.run(only: only)
}
