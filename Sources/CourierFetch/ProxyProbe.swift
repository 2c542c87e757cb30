import CourierCore
import Dispatch
import FoundationEssentials
@preconcurrency import Glibc

/// Asks a proxy for the status of a `CONNECT`, once, with plain sockets.
///
/// async-http-client reports any `CONNECT` answer other than 200 and 407 as "invalid proxy
/// response", without the status. That hides the answers an operator needs to tell apart: 401
/// (tinyproxy's answer to *wrong* credentials — it sends 407 only when none are given), 403 (the
/// proxy's ACL forbids the port or host) and 502/503 (the proxy cannot reach the server, worth a
/// retry). So when that error comes, this probe repeats the same `CONNECT` and reads the status
/// line. It runs on a Dispatch thread, bounded by the policy's timeouts, and never logs what it
/// sends.
enum ProxyProbe {
    /// The status code the proxy answers to `CONNECT target`, or nil if the probe itself failed.
    static func connectStatus(proxy: ProxySettings, target: String, timeout: Int64) async -> Int? {
        await withCheckedContinuation { (cont: CheckedContinuation<Int?, Never>) in
            DispatchQueue.global().async {
                cont.resume(returning: blockingStatus(proxy: proxy, target: target, timeout: timeout))
            }
        }
    }

    static func blockingStatus(proxy: ProxySettings, target: String, timeout: Int64) -> Int? {
        guard let fd = try? Sys.connectTCP(host: proxy.host, port: Int(proxy.port), timeout: Int(max(1, timeout)))
        else { return nil }

        var req = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let user = proxy.username {
            req +=
                "Proxy-Authorization: Basic \(Data("\(user):\(proxy.password ?? "")".utf8).base64EncodedString())\r\n"
        }
        req += "\r\n"
        let bytes = Array(req.utf8)
        guard (try? Sys.sendAll(fd.raw, bytes, display: "proxy \(proxy.host)")) != nil else { return nil }
        // "HTTP/1.x NNN" is all that is needed.
        var head: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while head.count < 12 {
            let n = buf.withUnsafeMutableBytes { try? Sys.receive(fd.raw, $0.baseAddress!, $0.count, display: "proxy") }
            guard let n, n > 0 else { break }
            head += buf[0..<n]
        }
        let line = String(decoding: head.prefix(64), as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
        return Int(parts[1])
    }
}
