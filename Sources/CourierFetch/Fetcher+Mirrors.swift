import AsyncHTTPClient
import CourierCore
import Logging

/// What a mirrored fetch returns: the value and which mirror served it.
public struct Served<Value: Sendable>: Sendable {
    public var value: Value
    /// The mirror's URL without credentials (safe for logs, reports and `--json`).
    public var mirror: String
    /// Its position in the configured list (0 for the first).
    public var index: Int
}

extension CourierError.Code {
    /// Every mirror's host was contacted by an earlier run less than `min_interval` ago: not an
    /// error of the upstream, the stager reports the type as unchanged.
    public static let minInterval = CourierError.Code("min-interval")
}

extension Fetcher {
    /// `urls` in the order a fetch would try them: those that have not failed recently first
    /// (`mirrors.json`), each group in the given order. URLs that do not parse stay at the end.
    public func mirrorOrder(_ urls: [String]) -> [String] {
        let parsed = urls.compactMap { try? FetchURL($0) }
        guard parsed.count == urls.count else { return urls }
        return mirrorStore.order(parsed, now: CoolDownStore.now()).order.map { urls[$0] }
    }

    /// The retry window over a list of mirrors (one for a plain `url`).
    ///
    /// Order: mirrors that have not failed recently first, then those `mirrors.json` demotes, each
    /// group in configuration order; mirrors whose host is cooling down (`Retry-After`, 403, busy)
    /// or, for the main download, inside `minInterval` are not contacted at all.
    ///
    /// Failover is per attempt: a failure moves on to the next mirror at once; only when every
    /// mirror still in play has failed in this round does the backoff wait come, then the next
    /// round. A mirror that fails for good (404, 403, a TLS error) leaves the rotation. With one
    /// mirror this is exactly the single-URL retry loop: backoff between attempts, `Retry-After`
    /// honoured while the window allows, a cool-down beyond it.
    func withMirrors<T: Sendable>(
        _ texts: [String], gateMinInterval: Bool,
        _ attempt: (FetchURL, HTTPClient) async throws -> T
    ) async throws -> Served<T> {
        guard !texts.isEmpty else { throw CourierError(.config, "no URL to fetch") }
        let urls = try texts.map { try FetchURL($0) }
        let now = CoolDownStore.now()
        let (order, demoted) = mirrorStore.order(urls, now: now)
        let many = urls.count > 1
        var errors: [Int: CourierError] = [:]
        var alive: [Int] = []
        for i in order {
            let u = urls[i]
            if let entry = activeCoolDown(u) {
                logger.warning(
                    "host is cooling down; not contacted",
                    metadata: [
                        "url": "\(u.redacted)", "state": "\(store.path ?? "(memory)")",
                    ])
                errors[i] = CourierError(
                    .download, CoolDownStore.message(url: u.redacted, authority: u.authority, entry: entry))
                continue
            }
            if gateMinInterval, policy.minInterval > 0, let last = contacts.last(u.authority),
                last < policy.runStarted, now - last < policy.minInterval
            {
                logger.info(
                    "host contacted less than min_interval ago; not contacted",
                    metadata: [
                        "url": "\(u.redacted)", "last-contact": "\(RFC3339.format(last))",
                    ])
                errors[i] = CourierError(
                    .minInterval,
                    "min_interval: \(u.authority) was contacted \(now - last)s ago (min_interval \(policy.minInterval)s); next contact after \(RFC3339.format(last + policy.minInterval))"
                )
                continue
            }
            alive.append(i)
        }
        if many {
            logger.info(
                "mirror order",
                metadata: [
                    "order":
                        "\(order.map { urls[$0].redacted + (demoted.contains($0) ? " (failed recently)" : "") }.joined(separator: ", "))"
                ])
        }
        guard !alive.isEmpty else { throw combined(errors, urls) }

        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        var round = 0
        var pos = 0
        var busy: [Int: Int] = [:]  // mirror -> status of its last 429/503 without Retry-After
        func elapsed() -> Double {
            let d = clock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        func settleBusy(except winner: Int? = nil) {
            for (i, status) in busy where i != winner {
                let u = urls[i]
                let entry = store.busyEntry(
                    for: u.authority, status: status, first: policy.busyCoolDown, cap: policy.maxBusyCoolDown)
                var log = logger
                log[metadataKey: "url"] = "\(u.redacted)"
                recordCoolDown(entry, for: u.authority, log: log)
            }
        }
        while true {
            n += 1
            let i = alive[pos]
            let url = urls[i]
            var log = logger
            log[metadataKey: "url"] = "\(url.redacted)"
            let proxy = try policy.proxy(for: url)
            if let proxy { log[metadataKey: "proxy"] = "\(proxy)" }
            let client = try client(for: proxy)
            noteContact(url, log: log)
            let failure: FetchFailure
            do {
                let value = try await attempt(url, client)
                if many {
                    log.info("served by mirror \(i + 1) of \(urls.count)")
                    do { try mirrorStore.recordSuccess(url) } catch {
                        log.error("cannot update mirrors.json", metadata: ["error": "\(error)"])
                    }
                }
                busy[i] = nil
                settleBusy()
                if store.load()[url.authority] != nil {
                    do { try store.clear(url.authority) } catch {
                        log.error("cannot update the cool-down state", metadata: ["error": "\(error)"])
                    }
                }
                return Served(value: value, mirror: url.redacted, index: i)
            } catch {
                failure = await self.failure(for: error, url: url, proxy: proxy)
            }
            errors[i] = failure.error
            if many {
                do {
                    try mirrorStore.recordFailure(
                        url, reason: failure.error.message, now: CoolDownStore.now(), demotion: policy.mirrorDemotion)
                } catch {
                    log.error("cannot update mirrors.json", metadata: ["error": "\(error)"])
                }
            }
            if failure.kind == .transient, let s = failure.status, s == 429 || s == 503 {
                busy[i] = s
            } else {
                busy[i] = nil
            }
            let remaining = Double(policy.retryFor) - elapsed()

            /// Takes mirror `i` out of this fetch; throws when none is left.
            func drop() throws {
                alive.remove(at: pos)
                if alive.isEmpty {
                    settleBusy()
                    if !many { throw failure.error }
                    throw combined(errors, urls)
                }
                if pos >= alive.count {
                    pos = 0
                    round += 1
                }
                if many {
                    log.warning("mirror failed; trying the next", metadata: ["reason": "\(failure.error.message)"])
                }
            }

            switch failure.kind {
            case .fatal:
                if failure.status == 403 {
                    let secs = policy.forbiddenCoolDown
                    if secs > 0 {
                        let e = CoolDownStore.Entry(
                            until: CoolDownStore.now() + secs, retryAfter: secs, status: 403, kind: "forbidden")
                        recordCoolDown(e, for: url.authority, log: log)
                    }
                }
                try drop()
            case .retryAfter(let seconds, let status):
                // Never faster than our own backoff, so `Retry-After: 0` cannot make a busy loop.
                let wait = max(Double(seconds), backoff(n))
                if wait > remaining {
                    let entry = CoolDownStore.Entry(
                        until: CoolDownStore.now() + seconds, retryAfter: seconds, status: status)
                    recordCoolDown(entry, for: url.authority, log: log)
                    errors[i] = CourierError(
                        .download, CoolDownStore.message(url: url.redacted, authority: url.authority, entry: entry))
                    if !many {
                        settleBusy()
                        throw errors[i]!
                    }
                    alive.remove(at: pos)
                    if alive.isEmpty {
                        settleBusy()
                        throw combined(errors, urls)
                    }
                    if pos >= alive.count {
                        pos = 0
                        round += 1
                    }
                    continue
                }
                if alive.count > 1 {
                    // Another mirror may serve now; come back to this one in the next round.
                    pos += 1
                    if pos >= alive.count {
                        pos = 0
                        round += 1
                        try await Task.sleep(for: .seconds(backoff(round)))
                    }
                    continue
                }
                log.warning(
                    "server asked to retry later",
                    metadata: [
                        "status": "\(status)", "retry-after": "\(seconds)s", "attempt": "\(n)",
                    ])
                try await Task.sleep(for: .seconds(wait))
            case .transient:
                pos += 1
                if pos < alive.count {
                    log.warning("mirror failed; trying the next", metadata: ["reason": "\(failure.error.message)"])
                    continue
                }
                pos = 0
                round += 1
                let wait = backoff(round)
                guard wait <= remaining else {
                    settleBusy()
                    if many { throw combined(errors, urls, attempts: n, seconds: elapsed()) }
                    if n == 1 { throw failure.error }
                    throw CourierError(
                        failure.error.code,
                        failure.error.message
                            + " (gave up after \(n) attempts in \(Int(elapsed().rounded()))s; retry window \(policy.retryFor)s)"
                    )
                }
                log.warning(
                    "attempt failed; retrying",
                    metadata: [
                        "attempt": "\(n)", "reason": "\(failure.error.message)",
                        "wait": "\(Int((wait * 1000).rounded()))ms",
                    ])
                try await Task.sleep(for: .seconds(wait))
            }
        }
    }

    /// Remembers that this run contacted `url`'s host (`contact.json`, for `min_interval`).
    private func noteContact(_ url: FetchURL, log: Logger) {
        do { try contacts.record(url.authority, now: CoolDownStore.now()) } catch {
            log.error("cannot update contact.json", metadata: ["error": "\(error)"])
        }
    }

    /// One error for a list of mirrors that all failed: each mirror's reason, in configuration
    /// order. The code is theirs when they agree (all `.minInterval`, all `.network`), else `.download`.
    private func combined(
        _ errors: [Int: CourierError], _ urls: [FetchURL], attempts: Int? = nil, seconds: Double? = nil
    ) -> CourierError {
        if urls.count == 1, let e = errors[0] { return e }
        let codes = Set(errors.values.map(\.code))
        let code = codes.count == 1 ? codes.first! : .download
        let parts = errors.keys.sorted().map { "mirror \($0 + 1): \(errors[$0]!.message)" }
        var text = "all \(urls.count) mirrors failed: " + parts.joined(separator: "; ")
        if codes == [.minInterval] {
            text = "min_interval: every mirror's host was contacted recently: " + parts.joined(separator: "; ")
        }
        if let attempts, let seconds {
            text +=
                " (gave up after \(attempts) attempts in \(Int(seconds.rounded()))s; retry window \(policy.retryFor)s)"
        }
        return CourierError(code, text)
    }
}
