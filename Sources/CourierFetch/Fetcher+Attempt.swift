import AsyncHTTPClient
import CourierCore
import Logging
import NIOCore
import NIOHTTP1

/// One attempt of each operation: send, judge the status, stream the body. Every failure leaves
/// as a `FetchFailure` that says whether another attempt may help; the retry loop in
/// `Fetcher.swift` decides whether there is time for it.
extension Fetcher {
    /// One attempt at the file. A 416 to a resume, or a 206 for the wrong range, starts again at
    /// once without a `Range` (after the connection is closed), which cannot repeat.
    func attemptFile(
        _ url: FetchURL, into partial: PartialDownload, validators: Validators?,
        maxBytes: Int64? = nil, client: HTTPClient
    ) async throws -> FetchOutcome {
        while true {
            let resume = partial.resumable(url: url.redacted)
            var extra = HTTPHeaders()
            if let v = validators {
                if let etag = v.etag { extra.add(name: "If-None-Match", value: etag) }
                if let lm = v.lastModified { extra.add(name: "If-Modified-Since", value: lm) }
            }
            if let resume {
                extra.add(name: "Range", value: "bytes=\(resume.offset)-")
                extra.add(name: "If-Range", value: resume.ifRange)
            }
            let proxy = try policy.proxy(for: url)
            let outcome: FetchOutcome? = try await exchange(url, proxy: proxy, client: client, extra: extra) {
                head, body in
                try await self.receiveFile(
                    url, head: head, body: body, partial: partial, resume: resume, validators: validators,
                    maxBytes: maxBytes ?? self.policy.maxBytes)
            }
            if let outcome { return outcome }
        }
    }

    /// The response to one file request; nil means "start again without a Range".
    private func receiveFile(
        _ url: FetchURL, head: ResponseHead, body: BodyReader, partial: PartialDownload,
        resume: (offset: Int64, ifRange: String)?, validators: Validators?,
        maxBytes: Int64
    ) async throws -> FetchOutcome? {
        let status = Int(head.status.code)
        if status == 304 {
            guard let validators, !validators.isEmpty else {
                throw FetchFailure.fatal(
                    .download, "\(url.redacted): HTTP 304 Not Modified to an unconditional request")
            }
            // What the caller holds is current; leftovers of another version are garbage.
            partial.discard()
            return .notModified
        }
        if status == 416, resume != nil {
            // The partial is no prefix of what the server has now (it shrank, or the partial was
            // already complete): start again at once, this time without a Range.
            logger.info("resume refused (416); starting again", metadata: ["url": "\(url.redacted)"])
            partial.discard()
            return nil
        }
        guard status == 200 || status == 206 else { throw statusFailure(head, url) }

        let headers = head.headers
        var got = Validators(etag: headers.first(name: "ETag"), lastModified: headers.first(name: "Last-Modified"))
        var offset: Int64 = 0
        var total = contentLength(headers)
        if status == 206 {
            // Only a range that starts exactly where the partial ends may be appended.
            guard let resume, let range = contentRange(headers), range.start == resume.offset else {
                // Not the range asked for: appending would corrupt the file. Start again at once
                // (without a partial there is no Range, so this cannot repeat).
                logger.warning(
                    "unexpected Content-Range; starting again",
                    metadata: [
                        "url": "\(url.redacted)", "content-range": "\(headers.first(name: "Content-Range") ?? "-")",
                    ])
                partial.discard()
                guard resume != nil else {
                    throw FetchFailure.fatal(.download, "\(url.redacted): HTTP 206 to a request without Range")
                }
                return nil
            }
            offset = resume.offset
            if let t = range.total { total = t } else if let len = total { total = offset + len }
            if got.isEmpty, let rec = partial.record() { got = rec.validators }
        }
        if let total, total > maxBytes {
            partial.discard()
            throw FetchFailure.fatal(
                .limit,
                "\(url.redacted): the server announces \(total) bytes, more than the limit of \(maxBytes)")
        }
        if status == 200 {
            // A fresh body: describe it before its first byte lands, so a kill at any point leaves
            // a partial that the next run can resume — or, without a strong validator, none.
            if got.ifRange != nil {
                try partial.writeRecord(.init(url: url.redacted, etag: got.etag, lastModified: got.lastModified))
            } else {
                partial.forgetRecord()
            }
        }

        let sink = try FileSink(path: partial.partialPath, offset: offset)
        var received: Int64 = 0
        var pacer = RatePacer(rate: policy.maxRate)
        do {
            while let chunk = try await body.next() {
                received += Int64(chunk.readableBytes)
                if offset + received > maxBytes {
                    sink.abandon()
                    partial.discard()
                    throw FetchFailure.fatal(
                        .limit,
                        "\(url.redacted): body exceeds the limit of \(maxBytes) bytes; download stopped")
                }
                try sink.write(chunk)
                try await pacer.pace(chunk.readableBytes)
                // The run's shared cap (pull's `bwlimit`): every download of the run takes from
                // one bucket, so parallel or successive downloads together stay under it.
                if let shared = policy.throttle { await shared.pauseAsync(after: chunk.readableBytes) }
            }
        } catch let f as FetchFailure {
            throw f
        } catch let e as CourierError {
            sink.abandon()
            throw FetchFailure(error: e, kind: .fatal)
        } catch {
            sink.abandon()
            throw bodyFailure(error, url: url, have: offset + received, total: total)
        }
        if let total, offset + received != total {
            sink.abandon()
            throw FetchFailure.transient(
                .download, "\(url.redacted): truncated: got \(offset + received) of \(total) bytes")
        }
        try sink.finish()
        try partial.commit()
        logger.info(
            "downloaded",
            metadata: [
                "url": "\(url.redacted)", "bytes": "\(offset + received)", "resumed-at": "\(offset)",
            ])
        return .downloaded(bytes: offset + received, validators: got, resumed: status == 206)
    }

    func attemptSmall(_ url: FetchURL, limit: Int64, client: HTTPClient) async throws -> [UInt8] {
        try await exchange(url, proxy: try policy.proxy(for: url), client: client) { head, body in
            guard head.status == .ok else { throw self.statusFailure(head, url) }
            let total = self.contentLength(head.headers)
            if let total, total > limit {
                throw FetchFailure.fatal(
                    .limit, "\(url.redacted): the server announces \(total) bytes, more than the limit of \(limit)")
            }
            var out: [UInt8] = []
            out.reserveCapacity(Int(min(total ?? 4096, limit)))
            do {
                while let chunk = try await body.next() {
                    guard Int64(out.count + chunk.readableBytes) <= limit else {
                        throw FetchFailure.fatal(.limit, "\(url.redacted): body exceeds the limit of \(limit) bytes")
                    }
                    chunk.withUnsafeReadableBytes { out.append(contentsOf: $0) }
                }
            } catch let f as FetchFailure {
                throw f
            } catch {
                throw self.bodyFailure(error, url: url, have: Int64(out.count), total: total)
            }
            if let total, Int64(out.count) != total {
                throw FetchFailure.transient(
                    .download, "\(url.redacted): truncated: got \(out.count) of \(total) bytes")
            }
            return out
        }
    }

    // MARK: - Judging responses

    /// A non-success status. Its body is not read: dropping the response makes async-http-client
    /// close the connection, which is cheaper than reading an error page of unknown size.
    func statusFailure(_ response: ResponseHead, _ url: FetchURL) -> FetchFailure {
        let code = Int(response.status.code)
        let text = "\(url.redacted): HTTP \(code) \(Escape.text(response.status.reasonPhrase))"
        if code == 429 || code == 503, let value = response.headers.first(name: "Retry-After"),
            let seconds = RetryAfter.seconds(value, now: CoolDownStore.now())
        {
            var f = FetchFailure(
                error: CourierError(.download, text + " (Retry-After: \(Escape.text(value)))"),
                kind: .retryAfter(seconds: seconds, status: code))
            f.status = code
            return f
        }
        var f: FetchFailure
        switch code {
        case 407:
            f = .fatal(.proxy, "\(url.redacted): proxy authentication required (407)")
        case 408, 429, 500...599:
            f = .transient(.download, text)
        default:
            // The status rides along as the cause, so that a caller can tell "not there" (404)
            // from other failures without parsing the message (TUF's root loop ends on 404/403).
            f = .fatal(.download, text, cause: HTTPStatus(code: code))
        }
        f.status = code
        return f
    }

    /// The body stopped with an error. A stall says so ("timed out … without data"); anything
    /// else cut short of the announced length is a truncation, which a resume can repair.
    func bodyFailure(_ error: any Error, url: FetchURL, have: Int64, total: Int64?) -> FetchFailure {
        var f = FailureMapper.map(error, url: url, proxy: nil, policy: policy)
        guard f.kind != .fatal else { return f }
        if f.isReadTimeout {
            let of = total.map { " of \($0)" } ?? ""
            f.error = CourierError(f.error.code, f.error.message + " (got \(have)\(of) bytes)")
        } else if let total {
            f = .transient(.download, "\(url.redacted): truncated: got \(have) of \(total) bytes")
        }
        return f
    }

    func contentLength(_ headers: HTTPHeaders) -> Int64? {
        let values = headers["Content-Length"]
        guard let first = values.first, values.allSatisfy({ $0 == first }) else { return nil }
        return Int64(first.trimming(" \t"))
    }

    /// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
    func contentRange(_ headers: HTTPHeaders) -> (start: Int64, end: Int64, total: Int64?)? {
        guard let v = headers.first(name: "Content-Range") else { return nil }
        let parts = v.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bytes" else { return nil }
        let rangeAndTotal = parts[1].split(separator: "/", maxSplits: 1)
        let bounds = rangeAndTotal[0].split(separator: "-", maxSplits: 1)
        guard rangeAndTotal.count == 2, bounds.count == 2, let start = Int64(bounds[0]), let end = Int64(bounds[1]),
            end >= start
        else { return nil }
        let total = rangeAndTotal[1] == "*" ? nil : Int64(rangeAndTotal[1])
        if rangeAndTotal[1] != "*" && total == nil { return nil }
        return (start, end, total)
    }
}

/// `max_rate`: paces a download by sleeping whenever it is ahead of `rate` bytes per second since
/// its first byte. Sleeping in the consumer is enough: both clients read the socket only on
/// demand, so the server is slowed by TCP's window, not buffered in memory. Per download; the
/// cap shared by a whole run is `FetchPolicy.throttle` (CourierCore's `Throttle`).
struct RatePacer {
    let rate: Int64?
    private var start: ContinuousClock.Instant? = nil
    private var bytes: Int64 = 0

    init(rate: Int64?) { self.rate = rate }

    mutating func pace(_ n: Int) async throws {
        guard let rate, rate > 0 else { return }
        let clock = ContinuousClock()
        let t0 = start ?? clock.now
        start = t0
        bytes += Int64(n)
        let due = Double(bytes) / Double(rate)
        let d = clock.now - t0
        let elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        if due > elapsed { try await Task.sleep(for: .seconds(due - elapsed)) }
    }
}
