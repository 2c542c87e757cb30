@preconcurrency import Glibc
import SystemPackage

/// The few socket calls Courier makes itself (HTTP goes through AsyncHTTPClient): the proxy
/// probe's TCP connection. Same rules as the rest of `Sys`.
extension Sys {
    /// Connects a close-on-exec TCP socket to the first address `host`:`port` resolves to, with
    /// `timeout` seconds for each send and receive (SO_SNDTIMEO/SO_RCVTIMEO). Throws when the
    /// name does not resolve or the connection fails; the caller closes the fd.
    public static func connectTCP(host: String, port: Int, timeout: Int) throws -> Int32 {
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
        let (fd, e) = retrying { socket(first.pointee.ai_family, type, 0) }
        if let e { throw CourierError.io("socket", path: display, errno: e) }
        var tv = timeval(tv_sec: max(1, timeout), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // connect is not retried on EINTR (the connection goes on in the background); it fails.
        if Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            let e = Errno(rawValue: errno)
            close(fd)
            throw CourierError.io("connect", path: display, errno: e)
        }
        return fd
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
