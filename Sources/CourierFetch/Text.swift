/// The few string helpers the fetcher needs, without Foundation's `NSString` bridge (the house
/// imports only FoundationEssentials where it can, which has none of them).
extension StringProtocol {
    /// The range of the first `://`, the only separator the URL parsers look for.
    var schemeSeparator: Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix("://") { return i..<index(i, offsetBy: 3) }
            i = index(after: i)
        }
        return nil
    }
}
