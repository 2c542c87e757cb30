import CourierCore
import Foundation
import Testing

/// The entry limit bites while the manifest is scanned, before it is decoded (issue #11.6): a
/// signed manifest listing 200,001 files used to be decoded whole (~143 MB of objects) and only
/// then counted.
@Suite(.serialized) struct ManifestLimitTests {
    /// A status field of this process in kB ("VmRSS", "VmHWM").
    func status(_ field: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    /// Manifest bytes listing `n` files, written by hand (the encoder would itself cost memory).
    func hugeManifest(_ n: Int) -> [UInt8] {
        var mb: [UInt8] = []
        mb.reserveCapacity(n * 100 + 400)
        mb += bytes(
            "{\"created\":\"\(RFC3339.format(testNow))\",\"expires\":\"\(RFC3339.format(testNow + 86400))\",\"files\":["
        )
        let sha = bytes(String(repeating: "0", count: 64))
        for i in 0..<n {
            if i > 0 { mb.append(0x2c) }
            mb +=
                bytes("{\"mode\":\"0644\",\"path\":\"f") + bytes(String(format: "%06d", i)) + bytes("\",\"sha256\":\"")
            mb += sha
            mb += bytes("\",\"size\":0}")
        }
        mb += bytes(
            "],\"format\":1,\"kind\":\"full\",\"provenance\":{},\"revision\":20260921001,\"type\":\"virus-defs\"}")
        return mb
    }

    @Test func twoHundredThousandAndOneFilesAreRefusedBeforeDecoding() throws {
        let key = SigningKey()
        let w = Workspace("huge-manifest")
        let small = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [])
        try craftPackage(at: w.path("p.cpkg"), manifest: small, key: key, manifestBytes: hugeManifest(200_001)) { _ in }
        let opts = verifyOptions([key.publicKey])
        #expect(opts.limits.maxEntries == 200_000)

        // Peak RSS growth while verifying: reset the high-water mark (Linux clear_refs "5"), run,
        // read it again. Other suites run in parallel in this process, so the best of three tries
        // counts; decoding the list costs ~140 MB, reading and checking the bytes ~2 × 21 MB.
        var best = Int.max
        for _ in 0..<3 {
            let fd = open("/proc/self/clear_refs", O_WRONLY)
            try #require(fd >= 0, "cannot reset VmHWM")
            _ = write(fd, "5", 1)
            close(fd)
            let before = status("VmRSS")
            try #require(before > 0 && status("VmHWM") > 0)
            let t0 = Date()
            expectCourierError(.limit, "more than") {
                _ = try PackageVerifier.verify(path: w.path("p.cpkg"), options: opts)
            }
            let grown = status("VmHWM") - before
            print(
                "huge manifest: refused after \(Int(Date().timeIntervalSince(t0) * 1000)) ms, peak RSS +\(grown / 1024) MB"
            )
            best = min(best, grown)
            if best < 64 << 10 { break }
        }
        #expect(best < 64 << 10, "verifying grew the peak RSS by \(best / 1024) MB")
    }
}
