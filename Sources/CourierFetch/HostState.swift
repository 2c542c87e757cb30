import CourierCore
import FoundationEssentials

/// A small JSON map kept in the state directory (`mirrors.json`, `contact.json`): read whole,
/// changed, written atomically. Like `cooldown.json` it only spares servers and orders mirrors,
/// so an unreadable file counts as empty and a failed write is logged by the caller, never fatal.
/// One process-wide lock serialises read-modify-write between the fetchers of one run (one per
/// content type); across processes the stager's run lock does.
struct StateMap<Value: Codable & Sendable>: Sendable {
    let path: String?

    init(stateDir: String?, file: String) {
        path = stateDir.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/" + file }
    }

    func load() -> [String: Value] {
        guard let path, Sys.exists(path), let bytes = try? Sys.readFile(path, limit: 1 << 20),
            let map = try? JSONDecoder().decode([String: Value].self, from: Data(bytes))
        else { return [:] }
        return map
    }

    /// Applies `change` to the stored map and writes it back (only when it changed).
    func update(_ change: (inout [String: Value]) -> Void) throws where Value: Equatable {
        guard let path else { return }
        try stateMapLock.withLock { _ in
            let before = load()
            var map = before
            change(&map)
            guard map != before else { return }
            let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !dir.isEmpty { try Sys.mkdirs(dir) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            let data: Data
            do { data = try enc.encode(map) } catch {
                throw CourierError(.io, "\(path): cannot encode", cause: error)
            }
            try Sys.writeFileAtomically(path, Array(data) + [0x0a])
        }
    }
}

private let stateMapLock = Locked<Void>(())

/// `mirrors.json`: mirrors that failed recently, keyed by URL without credentials. A mirror listed
/// here with `until` in the future is tried after the healthy ones, in configuration order, and a
/// success removes it:
///
///     {"https://a.example.com/feed.tar.gz": {"failed": 1795000000, "until": 1795003600,
///                                             "reason": "…: connection refused"}}
struct MirrorStore: Sendable {
    struct Entry: Codable, Equatable, Sendable {
        var failed: Int64
        var until: Int64
        var reason: String
    }

    let map: StateMap<Entry>

    init(stateDir: String?) { map = StateMap(stateDir: stateDir, file: "mirrors.json") }

    /// Indexes of `urls` in the order to try them: healthy ones first, then demoted ones, each
    /// group in configuration order.
    func order(_ urls: [FetchURL], now: Int64) -> (order: [Int], demoted: Set<Int>) {
        let m = map.load()
        var demoted = Set<Int>()
        for (i, u) in urls.enumerated() where (m[u.redacted]?.until ?? 0) > now { demoted.insert(i) }
        let order = urls.indices.filter { !demoted.contains($0) } + urls.indices.filter { demoted.contains($0) }
        return (order, demoted)
    }

    func recordFailure(_ url: FetchURL, reason: String, now: Int64, demotion: Int64) throws {
        try map.update { m in
            m = m.filter { $0.value.until > now }
            m[url.redacted] = Entry(failed: now, until: now + demotion, reason: reason)
        }
    }

    func recordSuccess(_ url: FetchURL) throws {
        try map.update { m in m[url.redacted] = nil }
    }
}

/// `contact.json`: when this stager last sent a request to each host (`host[:port]`), for
/// `min_interval`: `{"mirror.example.com": 1795000000}`.
struct ContactStore: Sendable {
    let map: StateMap<Int64>

    init(stateDir: String?) { map = StateMap(stateDir: stateDir, file: "contact.json") }

    func last(_ authority: String) -> Int64? { map.load()[authority] }

    func record(_ authority: String, now: Int64) throws {
        try map.update { m in m[authority] = now }
    }
}
