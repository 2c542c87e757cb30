import AsyncHTTPClient
import CourierCore
import Logging
import NIOCore
import NIOHTTP1

/// One attempt of each operation: send, judge the status, stream the body. Every failure leaves
/// as a `FetchFailure` that says whether another attempt may help; the retry loop in
/// `Fetcher.swift` decides whether there is time for it.
extension Fetcher {
    func attemptFile(_ url: FetchURL, into partial: PartialDownload, validators: Validators?,
                     client: HTTPClient) async throws -> FetchOutcome {
        var req = request(url)
        if let v = validators {
            if let etag = v.etag { req.headers.add(name: "If-None-Match", value: etag) }
            if let lm = v.lastModified { req.headers.add(name: "If-Modified-Since", value: lm) }
        }
        let resume = partial.resumable(url: url.redacted)
        if let resume {
            req.headers.add(name: "Range", value: "bytes=\(resume.offset)-")
            req.headers.add(name: "If-Range", value: resume.ifRange)
        }
        let response = try await client.execute(req, timeout: headTimeout, logger: logger)
        let status = Int(response.status.code)

        if status == 304 {
            guard let validators, !validators.isEmpty else {
                throw FetchFailure.fatal(.download, "\(url.redacted): HTTP 304 Not Modified to an unconditional request")
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
            return try await attemptFile(url, into: partial, validators: validators, client: client)
        }
        guard status == 200 || status == 206 else { throw statusFailure(response, url) }

        let headers = response.headers
        var got = Validators(etag: headers.first(name: "ETag"), lastModified: headers.first(name: "Last-Modified"))
        var offset: Int64 = 0
        var total = contentLength(headers)
        if status == 206 {
            // Only a range that starts exactly where the partial ends may be appended.
            guard let resume, let range = contentRange(headers), range.start == resume.offset else {
                // Not the range asked for: appending would corrupt the file. Start again at once
                // (without a partial there is no Range, so this cannot repeat).
                logger.warning("unexpected Content-Range; starting again", metadata: [
                    "url": "\(url.redacted)", "content-range": "\(headers.first(name: "Content-Range") ?? "-")"])
                partial.discard()
                guard resume != nil else {
                    throw FetchFailure.fatal(.download, "\(url.redacted): HTTP 206 to a request without Range")
                }
                return try await attemptFile(url, into: partial, validators: validators, client: client)
            }
            offset = resume.offset
            if let t = range.total { total = t } else if let len = total { total = offset + len }
            if got.isEmpty, let rec = partial.record() { got = rec.validators }
        }
        if let total, total > policy.maxBytes {
            partial.discard()
            throw FetchFailure.fatal(.limit,
                "\(url.redacted): the server announces \(total) bytes, more than the limit of \(policy.maxBytes)")
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
        do {
            for try await chunk in response.body {
                received += Int64(chunk.readableBytes)
                if offset + received > policy.maxBytes {
                    sink.abandon()
                    partial.discard()
                    throw FetchFailure.fatal(.limit,
                        "\(url.redacted): body exceeds the limit of \(policy.maxBytes) bytes; download stopped")
                }
                try sink.write(chunk)
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
            throw FetchFailure.transient(.download, "\(url.redacted): truncated: got \(offset + received) of \(total) bytes")
        }
        try sink.finish()
        try partial.commit()
        logger.info("downloaded", metadata: [
            "url": "\(url.redacted)", "bytes": "\(offset + received)", "resumed-at": "\(offset)"])
        return .downloaded(bytes: offset + received, validators: got, resumed: status == 206)
    }

    func attemptSmall(_ url: FetchURL, limit: Int64, client: HTTPClient) async throws -> [UInt8] {
        let response = try await client.execute(request(url), timeout: headTimeout, logger: logger)
        guard response.status == .ok else { throw statusFailure(response, url) }
        let total = contentLength(response.headers)
        if let total, total > limit {
            throw FetchFailure.fatal(.limit, "\(url.redacted): the server announces \(total) bytes, more than the limit of \(limit)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(min(total ?? 4096, limit)))
        do {
            for try await chunk in response.body {
                guard Int64(out.count + chunk.readableBytes) <= limit else {
                    throw FetchFailure.fatal(.limit, "\(url.redacted): body exceeds the limit of \(limit) bytes")
                }
                chunk.withUnsafeReadableBytes { out.append(contentsOf: $0) }
            }
        } catch let f as FetchFailure {
            throw f
        } catch {
            throw bodyFailure(error, url: url, have: Int64(out.count), total: total)
        }
        if let total, Int64(out.count) != total {
            throw FetchFailure.transient(.download, "\(url.redacted): truncated: got \(out.count) of \(total) bytes")
        }
        return out
    }

    // MARK: - Judging responses

    /// A non-success status. Its body is not read: dropping the response makes async-http-client
    /// close the connection, which is cheaper than reading an error page of unknown size.
    func statusFailure(_ response: HTTPClientResponse, _ url: FetchURL) -> FetchFailure {
        let code = Int(response.status.code)
        let text = "\(url.redacted): HTTP \(code) \(response.status.reasonPhrase)"
        if code == 429 || code == 503, let value = response.headers.first(name: "Retry-After"),
           let seconds = RetryAfter.seconds(value, now: CoolDownStore.now()) {
            return FetchFailure(error: CourierError(.download, text + " (Retry-After: \(value))"),
                                kind: .retryAfter(seconds: seconds, status: code))
        }
        switch code {
        case 407:
            return .fatal(.proxy, "\(url.redacted): proxy authentication required (407)")
        case 408, 429, 500...599:
            return .transient(.download, text)
        default:
            return .fatal(.download, text)
        }
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
        return Int64(first.trimmingPrefixSpaces)
    }

    /// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
    func contentRange(_ headers: HTTPHeaders) -> (start: Int64, end: Int64, total: Int64?)? {
        guard let v = headers.first(name: "Content-Range") else { return nil }
        let parts = v.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bytes" else { return nil }
        let rangeAndTotal = parts[1].split(separator: "/", maxSplits: 1)
        let bounds = rangeAndTotal[0].split(separator: "-", maxSplits: 1)
        guard rangeAndTotal.count == 2, bounds.count == 2, let start = Int64(bounds[0]), let end = Int64(bounds[1]),
              end >= start else { return nil }
        let total = rangeAndTotal[1] == "*" ? nil : Int64(rangeAndTotal[1])
        if rangeAndTotal[1] != "*" && total == nil { return nil }
        return (start, end, total)
    }
}

private extension String {
    var trimmingPrefixSpaces: Substring { self.drop(while: { $0 == " " || $0 == "\t" }) }
}
