import CourierCore
@preconcurrency import Glibc
import NIOSSL

/// `ca_file` / `ca_dir` / `ca_mode`: which certificate authorities an https:// upstream may be
/// signed by. A vendor mirror inside the company is often signed by a private CA; `add` trusts it
/// besides the system store, `replace` trusts only it (a pinned private mirror that no public CA
/// should be able to impersonate).
///
/// The certificates are read here, once per HTTP client, so that a missing or non-PEM file is a
/// configuration error that names the file, not a TLS failure at the first handshake.
enum TrustConfig {
    /// Nil when the policy names no CA (async-http-client's default: the system store).
    static func tlsConfiguration(_ policy: FetchPolicy) throws -> TLSConfiguration? {
        guard policy.caFile != nil || policy.caDir != nil else { return nil }
        var certs: [NIOSSLCertificate] = []
        if let f = policy.caFile { certs += try load(f, key: "ca_file") }
        if let d = policy.caDir {
            let names = try Sys.listDirectory(d).filter { $0.hasSuffix(".pem") || $0.hasSuffix(".crt") }.sorted()
            for n in names { certs += try load(d + "/" + n, key: "ca_dir") }
            if names.isEmpty { throw CourierError(.config, "ca_dir \(Escape.quoted(d)): no *.pem or *.crt files") }
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch policy.caMode {
        case .replace: tls.trustRoots = .certificates(certs)
        case .add: tls.additionalTrustRoots = [.certificates(certs)]
        }
        return tls
    }

    private static func load(_ path: String, key: String) throws -> [NIOSSLCertificate] {
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 4 << 20) } catch let e as CourierError {
            throw CourierError(.config, "\(key) \(Escape.quoted(path)): \(e.message)")
        }
        let certs: [NIOSSLCertificate]
        do { certs = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw CourierError(.config, "\(key) \(Escape.quoted(path)): not PEM certificates")
        }
        guard !certs.isEmpty else {
            throw CourierError(.config, "\(key) \(Escape.quoted(path)): no PEM certificate in it")
        }
        return certs
    }
}
