import CourierCore
import FoundationEssentials
@preconcurrency import Glibc

/// `Retry-After` values (RFC 9110 §10.2.3): a number of seconds, or an HTTP-date. Pure functions,
/// so tests feed them strings and a clock value.
enum RetryAfter {
    /// Seconds to wait, at `now` (Unix seconds). A date in the past means 0. Nil when the value is
    /// neither form — the caller then treats the response as an ordinary transient failure.
    static func seconds(_ value: String, now: Int64) -> Int64? {
        let v = value.trimming(" \t")
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return Int64(v) ?? (1 << 40)  // absurdly long: as good as forever
        }
        guard let t = httpDate(String(v)) else { return nil }
        return max(0, t - now)
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Parses the three HTTP-date forms a server may send: IMF-fixdate (`Sun, 06 Nov 1994
    /// 08:49:37 GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
    /// (`Sun Nov  6 08:49:37 1994`). In all three the first number is the day and the second the
    /// year, which is all the tokeniser needs to know. Returns Unix seconds.
    static func httpDate(_ s: String) -> Int64? {
        let tokens = s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" })
        var month: Int64? = nil
        var clock: [Int64]? = nil
        var numbers: [Substring] = []
        for t in tokens {
            if t.contains(":") {
                let parts = t.split(separator: ":").compactMap { Int64($0) }
                guard parts.count == 3 else { return nil }
                clock = parts
            } else if t.allSatisfy({ $0.isASCII && $0.isNumber }) {
                numbers.append(t)
            } else if let m = months.firstIndex(of: t.lowercased()) {
                month = Int64(m + 1)
            }
        }
        guard let month, let clock, numbers.count == 2, let day = Int64(numbers[0]), var year = Int64(numbers[1]),
            clock[0] < 24, clock[1] < 60, clock[2] < 61
        else { return nil }
        if numbers[1].count == 2 { year += year >= 70 ? 1900 : 2000 }
        func p(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        // Reuse the one date routine Courier has rather than a second calendar.
        return RFC3339.parse(
            "\(p(year, 4))-\(p(month, 2))-\(p(day, 2))T\(p(clock[0], 2)):\(p(clock[1], 2)):\(p(min(clock[2], 59), 2))Z")
    }
}

/// The persisted cool-downs: when a server answers 429 or 503 with a `Retry-After` longer than
/// what is left of the retry window, the stager must not come back before that time — not in
/// this run, and not in the next one cron starts an hour later (freshclam's and cvdupdate's
/// behaviour, which mirrors expect). The same holds, with durations of our choosing, for a 403
/// (`kind: forbidden`: a licence problem does not heal by asking every hour) and for 429/503
/// without `Retry-After` that outlasted the window (`kind: busy`, doubling with `strikes`).
/// `stateDir/cooldown.json` maps a host (`host[:port]`) to when it may be asked again:
///
///     {"mirror.example.com": {"until": 1795000000, "retryAfter": 3600, "status": 503},
///      "cdn.example.com": {"until": 1795000600, "retryAfter": 600, "status": 429, "kind": "busy", "strikes": 2}}
///
/// Written atomically; entries are dropped a week after they end (`memory`), and when the host
/// serves a request. An unreadable file is treated
/// as empty: it is an optimisation for the server's sake, and must never stop a run by itself.
struct CoolDownStore: Sendable {
    struct Entry: Codable, Equatable, Sendable {
        /// Unix seconds before which the host is not contacted.
        var until: Int64
        /// What the server asked for, in seconds (for the message).
        var retryAfter: Int64
        /// The status that carried the `Retry-After` (or the 403, 429, 503).
        var status: Int
        /// Why: nil for the server's `Retry-After`, `forbidden` for a 403, `busy` for 429/503
        /// without `Retry-After` (then `strikes` counts the consecutive times, for the doubling).
        var kind: String? = nil
        var strikes: Int? = nil
    }

    /// Entries are kept this long past their end, so that a host that is busy again in the
    /// next runs gets a doubled cool-down rather than the first one again.
    static let memory: Int64 = 7 * 86400

    /// `stateDir/cooldown.json` (the one JSON-map reader and writer of the state directory).
    let map: StateMap<Entry>
    /// The file, or nil when the policy keeps no state.
    var path: String? { map.path }

    init(stateDir: String?) {
        map = StateMap(stateDir: stateDir, file: "cooldown.json")
    }

    static func now() -> Int64 { Int64(time(nil)) }

    func load() -> [String: Entry] { map.load() }

    /// The cool-down in force for `authority`, if any.
    func active(for authority: String, now: Int64 = CoolDownStore.now()) -> Entry? {
        guard let e = load()[authority], e.until > now else { return nil }
        return e
    }

    /// Records a cool-down. The caller serialises writers within the process; across processes the
    /// stager's run lock does.
    func record(_ entry: Entry, for authority: String, now: Int64 = CoolDownStore.now()) throws {
        guard path != nil else { return }
        try change(now: now) { $0[authority] = entry }
    }

    /// Forgets `authority` (it has just served a request): its next busy spell starts afresh.
    func clear(_ authority: String, now: Int64 = CoolDownStore.now()) throws {
        guard load()[authority] != nil else { return }
        try change(now: now) { $0[authority] = nil }
    }

    /// The doubled cool-down for a host that was busy (429/503 without `Retry-After`) again:
    /// `first * 2^(strikes-1)`, at most `cap`.
    func busyEntry(for authority: String, status: Int, first: Int64, cap: Int64, now: Int64 = CoolDownStore.now())
        -> Entry
    {
        let previous = load()[authority].flatMap { $0.kind == "busy" ? $0.strikes : nil } ?? 0
        let strikes = previous + 1
        let secs = min(cap, first << Int64(min(strikes - 1, 20)))
        return Entry(until: now + secs, retryAfter: secs, status: status, kind: "busy", strikes: strikes)
    }

    /// Entries a week past their end are dropped on every write.
    private func change(now: Int64, _ body: (inout [String: Entry]) -> Void) throws {
        try map.update { m in
            m = m.filter { $0.value.until + CoolDownStore.memory > now }
            body(&m)
        }
    }

    /// The one message for a host in cool-down: the same text when the server has just asked and
    /// when a later run finds the entry, so logs and alerts match on one string.
    static func message(url: String, authority: String, entry: Entry) -> String {
        switch entry.kind {
        case "forbidden":
            return
                "\(url): \(authority) answered HTTP 403 Forbidden; not asked again for \(entry.retryAfter)s, until \(RFC3339.format(entry.until))"
        case "busy":
            let n = entry.strikes ?? 1
            return
                "\(url): \(authority) answered HTTP \(entry.status) without Retry-After (\(n) time\(n == 1 ? "" : "s") in a row); cooling down for \(entry.retryAfter)s, until \(RFC3339.format(entry.until))"
        default:
            return
                "\(url): \(authority) answered HTTP \(entry.status) and asked to retry after \(entry.retryAfter)s; cooling down until \(RFC3339.format(entry.until))"
        }
    }
}
