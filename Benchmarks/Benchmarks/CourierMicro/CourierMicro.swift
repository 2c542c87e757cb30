// In-process micro-benchmarks of the hot paths of CourierCore (docs/BENCHMARKS.md, "Micro-benchmarks").
//
//   sha256-64MiB          SHA-256 of a 64 MiB in-memory buffer, fed in 1 MiB updates as
//                         PackageReader and TreeScanner do (swift-crypto's SHA256: CourierCore's
//                         own hashing entry point, TreeScanner.hashFile, takes a file descriptor)
//   sha256-64MiB-file     TreeScanner.hashFile (CourierCore) of a 64 MiB file in the page cache
//   manifest-decode-10k   Manifest.decode (strict JSON check + decode + every FORMAT.md §3 rule)
//                         of a 10,000-file manifest
//
// Not here: inotify event parsing (InotifyParser lives in the CourierInbox target, which the main
// package does not export as a library product, so another package cannot import it).
//
// BENCH_QUICK=1 shortens the runs (a smoke test of the pipeline, not figures to quote).
import Benchmark
import CourierCore
import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let quick = getenv("BENCH_QUICK").map { String(cString: $0) == "1" } ?? false
private let mib = 1 << 20
private let bufferSize = 64 * mib

/// Deterministic, incompressible-looking bytes (xorshift64*), so every run hashes the same input.
private func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var x = seed
    return [UInt8](unsafeUninitializedCapacity: count) { buf, n in
        for i in 0..<count {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27
            buf[i] = UInt8(truncatingIfNeeded: (x &* 0x2545_F491_4F6C_DD1D) >> 56)
        }
        n = count
    }
}

/// A valid full manifest of `count` files (sorted paths, spread over directories as real
/// signature sets are), in the exact bytes Courier writes.
private func manifestBytes(files count: Int) -> [UInt8] {
    var files: [FileEntry] = []
    files.reserveCapacity(count)
    for i in 0..<count {
        let digest = SHA256.hash(data: Array("file-\(i)".utf8)).map { String($0, radix: 16).leftPad(2) }.joined()
        files.append(FileEntry(path: "db/part-\(i / 100)/sig-\(i).ndb", size: UInt64(1000 + i), sha256: digest, mode: 0o644))
    }
    let m = Manifest(type: "virus-defs", revision: 20_261_121_001, kind: .full, created: 1_790_000_000,
                     expires: 1_790_000_000 + 30 * 86_400, provenance: ["source": "bench"], files: files)
    return m.encoded()
}

private extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .mallocCountTotal]
    let maxIterations = quick ? 3 : 50
    let maxDuration: Duration = quick ? .seconds(1) : .seconds(10)
    Benchmark.defaultConfiguration = .init(
        metrics: metrics,
        timeUnits: .microseconds,
        warmupIterations: 1,
        maxDuration: maxDuration,
        maxIterations: maxIterations
    )

    // --- SHA-256 of a 64 MiB buffer ------------------------------------------------------
    let buffer = pseudoRandomBytes(bufferSize)
    Benchmark("sha256-64MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            var hasher = SHA256()
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let end = min(offset + mib, raw.count)
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                    offset = end
                }
            }
            blackHole(hasher.finalize())
        }
    }

    // --- the same through CourierCore's file hashing (page cache, 1 MiB reads) ------------
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    let path = "\(dir)/courier-microbench-\(getpid()).bin"
    Benchmark("sha256-64MiB-file",
              configuration: .init(setup: {
                  let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o600)
                  precondition(fd >= 0, "cannot create \(path)")
                  buffer.withUnsafeBytes { raw in
                      var off = 0
                      while off < raw.count { let n = write(fd, raw.baseAddress! + off, raw.count - off); precondition(n > 0); off += n }
                  }
                  close(fd)
              }, teardown: { unlink(path) })) { benchmark in
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: mib, alignment: 64)
        defer { chunk.deallocate() }
        for _ in benchmark.scaledIterations {
            let fd = open(path, O_RDONLY)
            precondition(fd >= 0)
            let (digest, size) = try TreeScanner.hashFile(fd, display: path, buffer: chunk)
            close(fd)
            precondition(size == UInt64(bufferSize))
            blackHole(digest)
        }
    }

    // --- strict manifest decoding, 10,000 files --------------------------------------------
    let manifest = manifestBytes(files: 10_000)
    Benchmark("manifest-decode-10k") { benchmark in
        for _ in benchmark.scaledIterations {
            let m = try Manifest.decode(manifest)
            precondition(m.files.count == 10_000)
            blackHole(m)
        }
    }
}
