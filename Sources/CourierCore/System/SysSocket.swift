@preconcurrency import Glibc
import SystemPackage

/// The few socket calls Courier makes itself (HTTP goes through AsyncHTTPClient): the proxy
/// probe's TCP connection. Same rules as the rest of `Sys`.
extension Sys {
    /// Connects a close-on-exec TCP socket to the first address `host`:`port` resolves to, with
    /// `timeout` seconds for each send and receive (SO_SNDTIMEO/SO_RCVTIMEO), which also bounds
    /// the connect. Throws when the name does not resolve or the connection fails.
    public static func connectTCP(host: String, port: Int, timeout: Int) throws -> OwnedFD {
        let display = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else {
            throw CourierError(.io, "\(display): cannot resolve: \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let (raw, e) = retrying { socket(first.pointee.ai_family, type, 0) }
        if let e { throw CourierError.io("socket", path: display, errno: e) }
        let fd = OwnedFD(adopting: raw)
        let seconds = max(1, timeout)
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd.raw, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd.raw, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let deadline = monotonicSeconds() + Double(seconds)
        if Glibc.connect(fd.raw, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            let e = Errno(rawValue: errno)
            // SO_SNDTIMEO ending a blocking connect reads EINPROGRESS: the same timeout as the
            // deadline below, so it is named the same ("Connection timed out").
            if e == .nowInProgress { throw CourierError.io("connect", path: display, errno: .timedOut) }
            guard e == .interrupted else { throw CourierError.io("connect", path: display, errno: e) }
            // A signal cut the wait short, but the kernel goes on connecting: calling connect
            // again would only say EALREADY. Wait for the handshake to end instead, as for a
            // non-blocking connect, within what is left of the timeout.
            try finishConnect(fd.raw, deadline: deadline, display: display)
        }
        return fd
    }

    /// Waits (poll for POLLOUT, again after each EINTR, until `deadline` on the monotonic clock)
    /// for a connect already under way, then reads its outcome from SO_ERROR.
    private static func finishConnect(_ fd: Int32, deadline: Double, display: String) throws {
        while true {
            let left = deadline - monotonicSeconds()
            if left <= 0 { throw CourierError.io("connect", path: display, errno: .timedOut) }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = Glibc.poll(&pfd, 1, Int32(min(left, 3600) * 1000) + 1)
            if n < 0 {
                let e = Errno(rawValue: errno)
                if e == .interrupted { continue }
                throw CourierError.io("poll", path: display, errno: e)
            }
            if n > 0 { break }
        }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 {
            throw CourierError.io("getsockopt", path: display, errno: Errno(rawValue: errno))
        }
        if err != 0 { throw CourierError.io("connect", path: display, errno: Errno(rawValue: err)) }
    }

    /// Sends all of `bytes` on a socket (MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE).
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8], display: String) throws {
        var sent = 0
        while sent < bytes.count {
            let (n, e) = bytes[sent...].withUnsafeBytes { b in
                retrying { Glibc.send(fd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL)) }
            }
            if let e { throw CourierError.io("send", path: display, errno: e) }
            if n == 0 { throw CourierError(.io, "\(display): send sent nothing") }
            sent += n
        }
    }

    /// Receives up to `count` bytes; 0 when the peer closed.
    public static func receive(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String) throws -> Int
    {
        let (n, e) = retrying { Glibc.recv(fd, buf, count, 0) }
        if let e { throw CourierError.io("receive", path: display, errno: e) }
        return n
    }
}
