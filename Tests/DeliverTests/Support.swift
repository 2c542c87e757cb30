import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// A staging server's outbox and a fleet of client directories under one temporary root:
/// real packages built and signed by CourierCore, real inbox directories, real status files.
final class Fleet: @unchecked Sendable {
    let root: String
    let key = SigningKey()
    var outbox: String { root + "/outbox" }
    var trust: TrustStore { TrustStore(keys: [key.publicKey]) }

    /// `under`: the directory to create the root in (default: the temporary directory), e.g. a
    /// mounted file system of a particular kind.
    init(_ name: String = "fleet", under base: String? = nil) {
        root =
            (base ?? FileManager.default.temporaryDirectory.path)
            + "/courier-deliver-tests-\(getpid())-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root + "/outbox", withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }

    func tree(_ type: String, _ rev: UInt64) -> String { root + "/upstream/\(type)/\(rev)" }

    /// Publishes revision `rev` of `type` (files derived from the revision, so each differs a
    /// little from the last), with deltas from `bases`.
    @discardableResult
    func publish(_ type: String, _ rev: UInt64, bases: [UInt64] = [], extra: Int = 0) throws -> Outbox.Published {
        let dir = tree(type, rev)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for i in 0..<8 {
            let body =
                String(repeating: "signature \(i) of \(type)\n", count: 200) + (i == 0 ? "revision \(rev)\n" : "")
            try body.write(toFile: dir + "/db\(i).txt", atomically: false, encoding: .utf8)
        }
        if extra > 0 {
            // Random bytes: incompressible, so the package is as big as asked.
            let bytes = (0..<extra).map { _ in UInt8.random(in: 0...255) }
            FileManager.default.createFile(atPath: dir + "/big.bin", contents: Data(bytes))
        }
        let ob = Outbox(root: outbox)
        let files = try TreeScanner.scan(dir)
        let b = try bases.map { (revision: $0, files: try TreeScanner.scan(tree(type, $0))) }
        return try ob.publish(
            type: type, revision: rev, tree: dir, files: files, bases: b,
            options: PackageBuilder.Options(type: type, revision: rev, keys: [key], limits: Limits()))
    }

    /// `policy.toml` in the fleet's root with `text`, loaded.
    func policy(_ text: String) throws -> Policy {
        let path = root + "/policy.toml"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return try Policy.load(path)
    }

    /// `clients/<name>/inbox`, created; its status file goes to `clients/<name>/state/status.json`.
    func inbox(_ name: String) -> String {
        let p = root + "/clients/\(name)/inbox"
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    func writeStatus(
        _ inbox: String, installed: [String: UInt64], pinned: [String: UInt64] = [:],
        created: String = RFC3339.format(Int64(time(nil)))
    ) throws {
        var s = ClientStatus.empty(
            host: "host-" + URL(fileURLWithPath: inbox).deletingLastPathComponent().lastPathComponent)
        for (t, r) in installed {
            var ts = ClientStatus.TypeStatus()
            ts.installed = r
            ts.contentCreated = created
            ts.appliedAt = created
            ts.pinned = pinned[t]
            s.types[t] = ts
        }
        let dir = inbox + "/../state"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Sys.writeFileAtomically(dir + "/status.json", s.encoded())
    }

    func pusher(_ targets: [Target], types: [String]) throws -> Pusher {
        var p = Pusher(
            catalog: try Catalog.scan(outbox), verify: VerifyOptions(trust: trust, limits: Limits()),
            defaultTypes: types)
        p.targets = targets
        return p
    }

    func targets(_ inboxes: [String], types: [String] = [], spec: RevisionSpec = .latest) -> [Target] {
        TargetList.targets(
            patterns: inboxes, types: types, spec: spec, statusTemplate: TargetList.defaultStatusTemplate,
            limits: Limits())
    }

    func names(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    func bytes(_ p: String) -> Data? { FileManager.default.contents(atPath: p) }

    func fullPath(_ t: String, _ r: UInt64) -> String { Outbox(root: outbox).fullPackage(t, r) }
    func deltaPath(_ t: String, _ r: UInt64, from b: UInt64) -> String {
        Outbox(root: outbox).revisionDir(t, r) + "/" + Names.deltaPackageName(type: t, revision: r, base: b)
    }
}

/// Runs a command (mount, chattr) and says whether it succeeded.
@discardableResult
func sh(_ args: [String]) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}
