import AsyncHTTPClient
import CourierCore
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix

/// Plain `http://` through a forward proxy, the way proxies expect it: one connection to the
/// proxy, the request line in absolute form (`GET http://host:port/path HTTP/1.1`, RFC 9112
/// §3.2.2), `Proxy-Authorization` on that request, `Connection: close`.
///
/// async-http-client cannot do this: since its connection-pool rewrite it sends `CONNECT
/// host:80` for every proxied request, which Squid's stock configuration refuses (`http_access
/// deny CONNECT !SSL_ports`) and which bypasses what a proxy is often there for (caching,
/// inspection). So this small client on NIOHTTP1, with the same guards as the rest of the
/// fetcher: a connect timeout, an idle read timeout (as async-http-client's, reported with the
/// same error), and backpressure — the body is read only as fast as it is consumed.
enum PlainProxyClient {
    static func exchange<T>(
        _ url: FetchURL, proxy: ProxySettings, headers: HTTPHeaders, policy: FetchPolicy,
        _ handle: (ResponseHead, BodyReader) async throws -> T
    ) async throws -> T {
        let readTimeout = TimeAmount.seconds(policy.readTimeout)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(policy.connectTimeout))
            .connect(host: proxy.host, port: proxy.port) { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: readTimeout))
                    try ch.pipeline.syncOperations.addHandler(ReadTimeoutHandler())
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: ch)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.absoluteForm)
            head.headers.add(name: "Host", value: url.authority)
            head.headers.add(contentsOf: headers)
            if let user = proxy.username {
                let value = "Basic " + Data("\(user):\(proxy.password ?? "")".utf8).base64EncodedString()
                head.headers.add(name: "Proxy-Authorization", value: value)
            }
            head.headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))

            let box = IteratorBox(inbound.makeAsyncIterator())
            var response: HTTPResponseHead? = nil
            while response == nil {
                switch try await box.it.next() {
                case .head(let h) where h.status.code >= 100 && h.status.code < 200 && h.status.code != 101:
                    // An interim answer (100 Continue): its `.end` follows; the real head comes next.
                    continue
                case .head(let h): response = h
                case .end, .body: continue
                case nil: throw HTTPClientError.remoteConnectionClosed
                }
            }
            var ended = false
            let body = BodyReader {
                guard !ended else { return nil }
                switch try await box.it.next() {
                case .body(let b): return b
                case .end:
                    ended = true
                    return nil
                case .head: throw HTTPClientError.invalidProxyResponse
                case nil: throw HTTPClientError.remoteConnectionClosed
                }
            }
            return try await handle(ResponseHead(status: response!.status, headers: response!.headers), body)
        }
    }
}

/// Turns `IdleStateHandler`'s read-idle event into the error async-http-client reports for the
/// same condition, so `FailureMapper` words both alike, and closes the connection.
private final class ReadTimeoutHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? IdleStateHandler.IdleStateEvent, e == .read {
            context.fireErrorCaught(HTTPClientError.readTimeout)
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
