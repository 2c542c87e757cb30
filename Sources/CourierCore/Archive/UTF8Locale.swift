@preconcurrency import Glibc

/// libarchive converts names between UTF-8 (pax headers) and the C library's multibyte locale.
/// Under cron and systemd the locale is "C" (ASCII), where a non-ASCII name fails to convert and
/// libarchive 3.6's pax writer even dereferences the missing name. So every libarchive call that
/// touches names runs with the calling thread's LC_CTYPE switched to C.UTF-8 (`uselocale` is
/// per thread; the process locale is left alone).
enum UTF8Locale {
    nonisolated(unsafe) static let handle: locale_t? = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil)

    @inline(__always)
    static func with<T>(_ body: () throws -> T) rethrows -> T {
        guard let h = handle else { return try body() }
        let old = uselocale(h)
        defer { uselocale(old) }
        return try body()
    }
}
