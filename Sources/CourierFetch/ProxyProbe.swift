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
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(proxy.host, String(proxy.port), &hints, &res) == 0, let first = res else { return nil }
        defer { freeaddrinfo(res) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(max(1, timeout)), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { return nil }

        var req = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let user = proxy.username {
            req +=
                "Proxy-Authorization: Basic \(Data("\(user):\(proxy.password ?? "")".utf8).base64EncodedString())\r\n"
        }
        req += "\r\n"
        let bytes = Array(req.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return nil }
            sent += n
        }
        // "HTTP/1.x NNN" is all that is needed.
        var head: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while head.count < 12 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            head += buf[0..<n]
        }
        let line = String(decoding: head.prefix(64), as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
        return Int(parts[1])
    }
}
