/// The few string helpers the fetcher needs, without Foundation's `NSString` bridge (the house
/// imports only FoundationEssentials where it can, which has none of them).
extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmedBlanks: SubSequence {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }

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
