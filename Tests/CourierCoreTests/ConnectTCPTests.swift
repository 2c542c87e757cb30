import CourierCore
import Foundation
@preconcurrency import Glibc
import Synchronization
import Testing

/// How many SIGUSR2 the tests' handler ran for.
private let signalsCaught = Atomic<Int>(0)

/// `Sys.connectTCP` against real listeners on 127.0.0.1: the owner it returns, its errors, and
/// a signal arriving while `connect` waits for the handshake. For the last, the listener's
/// accept queue is filled first, so the kernel drops the client's SYN and `connect` blocks until
/// the SYN is sent again (1 s later) into a queue with room; the signal is sent only once
/// /proc/net/tcp shows the client in SYN_SENT, so it always lands inside that wait.
/// Serialized: the signal handler is the process's for the time of one test.
@Suite(.serialized) struct ConnectTCPTests {
    /// A listening socket on 127.0.0.1 with an accept queue of one (backlog 0); `accept` waits at
    /// most 15 s, so a broken test fails instead of hanging.
    final class Listener {
        let fd: OwnedFD
        let port: Int

        init() throws {
            let s = OwnedFD(adopting: socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                    bind(s.raw, sp, len) == 0 && listen(s.raw, 0) == 0 && getsockname(s.raw, sp, &len) == 0
                }
            }
            guard ok else { throw CourierError(.io, "listener: \(String(cString: strerror(errno)))") }
            var tv = timeval(tv_sec: 15, tv_usec: 0)
            setsockopt(s.raw, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            port = Int(UInt16(bigEndian: addr.sin_port))
            fd = consume s
        }

        func accept() throws -> OwnedFD {
            let c = Glibc.accept(fd.raw, nil, nil)
            guard c >= 0 else { throw CourierError(.io, "accept: \(String(cString: strerror(errno)))") }
            return OwnedFD(adopting: c)
        }

        /// Fills the accept queue: connects without blocking until a connection does not finish
        /// within 300 ms (its SYN was dropped: the queue is full), then drops that attempt.
        /// Returns the connections that wait in the queue.
        func fillQueue() -> [Held] {
            var queued: [Held] = []
            for _ in 0..<64 {
                let c = OwnedFD(
                    adopting: socket(
                        AF_INET,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                            | Int32(SOCK_CLOEXEC.rawValue), 0))
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                addr.sin_port = UInt16(port).bigEndian
                _ = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.connect(c.raw, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                var pfd = pollfd(fd: c.raw, events: Int16(POLLOUT), revents: 0)
                if poll(&pfd, 1, 300) != 1 { break }
                queued.append(Held(consume c))
            }
            return queued
        }

        /// Whether a client socket on this machine is in SYN_SENT towards this listener.
        func hasClientInSynSent() -> Bool {
            let remote = String(format: "0100007F:%04X", port)
            // Read to the end: Foundation may stop at the first page of a procfs file.
            let table = String(decoding: (try? Sys.readFile("/proc/net/tcp")) ?? [], as: UTF8.self)
            return table.split(separator: "\n").contains { line in
                let f = line.split(separator: " ")
                return f.count > 3 && f[2] == remote && f[3] == "02"
            }
        }
    }

    /// A descriptor kept open in an array (arrays hold only copyable values).
    final class Held {
        let fd: OwnedFD
        init(_ fd: consuming OwnedFD) { self.fd = fd }
    }

    /// What the thread running `connectTCP` saw: nil while it runs, then "sent" or the error.
    final class Outcome: Sendable {
        let thread = Mutex<pthread_t?>(nil)
        let result = Mutex<String?>(nil)

        func wait(seconds: Double) -> String? {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if let r = result.withLock({ $0 }) { return r }
                usleep(20_000)
            }
            return nil
        }
    }

    /// Starts `connectTCP` on a thread of its own; on success it sends "x" and closes.
    func connectInThread(port: Int, timeout: Int) -> Outcome {
        let out = Outcome()
        Thread {
            // Threads may start with signals blocked (inherited from the test runner's); this
            // one must take SIGUSR2.
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            out.thread.withLock { $0 = pthread_self() }
            do {
                let fd = try Sys.connectTCP(host: "127.0.0.1", port: port, timeout: timeout)
                try Sys.sendAll(fd.raw, Array("x".utf8), display: "test")
                out.result.withLock { $0 = "sent" }
            } catch {
                out.result.withLock { $0 = "\(error)" }
            }
        }.start()
        return out
    }

    /// Installs a handler for SIGUSR2 without SA_RESTART for the time of `body` (a socket with a
    /// timeout is never restarted anyway), then puts the previous one back.
    func withSignalHandler(_ body: () throws -> Void) rethrows {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in signalsCaught.add(1, ordering: .relaxed) }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        var old = sigaction()
        sigaction(SIGUSR2, &sa, &old)
        defer { sigaction(SIGUSR2, &old, nil) }
        try body()
    }

    /// Waits until the connecting thread is in SYN_SENT towards `l`, then signals it.
    func interruptConnect(_ out: Outcome, _ l: Listener) {
        let end = Date().addingTimeInterval(5)
        while !l.hasClientInSynSent() && Date() < end { usleep(10_000) }
        #expect(l.hasClientInSynSent(), "the connecting thread never reached SYN_SENT")
        #expect(out.result.withLock { $0 } == nil, "connect returned before the signal")
        guard let t = out.thread.withLock({ $0 }) else { return }
        let before = signalsCaught.load(ordering: .relaxed)
        #expect(pthread_kill(t, SIGUSR2) == 0)
        let end2 = Date().addingTimeInterval(2)
        while signalsCaught.load(ordering: .relaxed) == before && Date() < end2 { usleep(1000) }
        #expect(signalsCaught.load(ordering: .relaxed) == before + 1, "the signal was not handled")
    }

    @Test func connectsAndTheOwnerClosesTheSocket() throws {
        let l = try Listener()
        do {
            let fd = try Sys.connectTCP(host: "127.0.0.1", port: l.port, timeout: 5)
            try Sys.sendAll(fd.raw, Array("hello".utf8), display: "test")
        }
        let peer = try l.accept()
        var buf = [UInt8](repeating: 0, count: 16)
        var got: [UInt8] = []
        while true {
            let n = try buf.withUnsafeMutableBytes {
                try Sys.receive(peer.raw, $0.baseAddress!, $0.count, display: "t")
            }
            if n == 0 { break }  // the client's owner went away at the end of its scope: EOF
            got += buf[0..<n]
        }
        #expect(got == Array("hello".utf8))
    }

    @Test func aRefusedConnectionNamesTheAddressAndTheReason() throws {
        let port = try Listener().port  // closed again at once: nobody listens there now
        expectCourierError(.io, "127.0.0.1:\(port): connect failed: Connection refused") {
            _ = try Sys.connectTCP(host: "127.0.0.1", port: port, timeout: 2)
        }
    }

    @Test func aSignalDuringConnectWaitsForTheHandshakeInsteadOfFailing() throws {
        let l = try Listener()
        var queued = l.fillQueue()
        #expect(!queued.isEmpty)
        try withSignalHandler {
            let out = connectInThread(port: l.port, timeout: 10)
            interruptConnect(out, l)
            usleep(100_000)
            #expect(out.result.withLock { $0 } == nil, "connect gave up when the signal came")
            // Room in the queue: the SYN sent again gets through and the connect completes.
            for _ in queued.indices { _ = try l.accept() }
            queued.removeAll()
            #expect(out.wait(seconds: 12) == "sent")
            let peer = try l.accept()
            var b: UInt8 = 0
            #expect(try Sys.receive(peer.raw, &b, 1, display: "t") == 1 && b == UInt8(ascii: "x"))
        }
    }

    @Test func anInterruptedConnectStillEndsAtTheTimeout() throws {
        let l = try Listener()
        let queued = l.fillQueue()
        #expect(!queued.isEmpty)
        withSignalHandler {
            let start = Date()
            let out = connectInThread(port: l.port, timeout: 2)
            interruptConnect(out, l)
            let r = out.wait(seconds: 10)
            #expect(r?.contains("127.0.0.1:\(l.port)") == true && r?.contains("timed out") == true, "\(r ?? "nil")")
            #expect(Date().timeIntervalSince(start) < 4)
        }
        _ = queued
    }

    /// Without a signal, SO_SNDTIMEO ends the blocking connect with EINPROGRESS; it reads as the
    /// same "timed out" as the interrupted one, not "Operation now in progress".
    @Test func anUninterruptedConnectEndsAtTheTimeoutAsTimedOut() throws {
        let l = try Listener()
        let queued = l.fillQueue()
        #expect(!queued.isEmpty)
        let start = Date()
        let r = connectInThread(port: l.port, timeout: 1).wait(seconds: 10)
        #expect(r?.contains("127.0.0.1:\(l.port)") == true && r?.contains("timed out") == true, "\(r ?? "nil")")
        #expect(Date().timeIntervalSince(start) < 4)
        _ = queued
    }
}
