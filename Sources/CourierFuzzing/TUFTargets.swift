import CourierCore
import CourierTUF

/// CourierTUF's parsers: everything a TUF repository (or a mirror pretending to be one) sends
/// is parsed before a signature can be checked.
enum TUFTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(
            "tuf-json",
            "JSON as TUF reads it; an accepted value's canonical form (securesystemslib rules), when it is JSON, parses back to itself"
        ) { b in
            let v = try JSONValue.parse(b, what: "fuzz", limits: JSONValue.Limits(maxBytes: 1 << 20, maxDepth: 64))
            var once: [UInt8] = []
            v.appendCanonical(to: &once)
            // Canonical JSON escapes only `"` and `\`: a control character stays raw, which
            // JSON does not allow; otherwise the canonical form is JSON and a fixed point.
            guard !once.contains(where: { $0 < 0x20 }) else { return }
            let back: JSONValue
            do {
                back = try JSONValue.parse(
                    once, what: "canonical", limits: JSONValue.Limits(maxBytes: 4 << 20, maxDepth: 64))
            } catch {
                FuzzCheck.require(false, "the canonical form of an accepted value does not parse: \(error)")
                return
            }
            var again: [UInt8] = []
            back.appendCanonical(to: &again)
            FuzzCheck.require(once == again, "canonical JSON is not stable")
        },
        FuzzTarget(
            "tuf-metadata",
            "a metadata file parsed as each of root, timestamp, snapshot and targets; delegations searched"
        ) { b in
            // The updater's bounds (`UpdaterConfig.parseLimits`), as a client parses metadata.
            let limits = UpdaterConfig().parseLimits
            var parsed = 0
            var last: CourierError?
            func attempt(_ body: () throws -> Void) {
                do {
                    try body()
                    parsed += 1
                } catch let e as CourierError { last = e } catch {}
            }
            attempt { _ = try SignedMetadata<Root>(bytes: b, limits: limits) }
            attempt { _ = try SignedMetadata<Timestamp>(bytes: b, limits: limits) }
            attempt { _ = try SignedMetadata<Snapshot>(bytes: b, limits: limits) }
            attempt {
                let t = try SignedMetadata<Targets>(bytes: b, limits: limits)
                if let d = t.signed.delegations {
                    for path in ["a", "a/b.txt", "targets/x/y", "%2F..", ""] { _ = d.rolesForTarget(path) }
                }
            }
            if parsed == 0, let last { throw last }
        },
        FuzzTarget("tuf-trusted-root", "a root.json as the trust anchor: parsed and verified against itself") { b in
            _ = try TrustedMetadataSet(
                rootBytes: b, referenceTime: FuzzSeeds.created, limits: UpdaterConfig().parseLimits)
        },
        FuzzTarget("tuf-path-pattern", "a delegation path pattern against a target path: [path] 0x00 [pattern]") { b in
            guard let nul = b.firstIndex(of: 0) else { throw CourierError(.malformed, "no separator") }
            let path = String(decoding: b[..<nul], as: UTF8.self)
            let pattern = String(decoding: b[(nul + 1)...], as: UTF8.self)
            let m = PathMatch.matches(path, pattern: pattern)
            // A pattern without metacharacters matches exactly itself.
            if !pattern.unicodeScalars.contains(where: { "*?[".unicodeScalars.contains($0) }) {
                FuzzCheck.require(
                    m == path.unicodeScalars.elementsEqual(pattern.unicodeScalars),
                    "a literal pattern matched another path")
            }
        },
    ]
}
