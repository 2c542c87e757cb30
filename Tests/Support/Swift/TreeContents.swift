import Foundation

/// Every regular file below `dir` by its relative path, with its bytes: how tests compare an
/// applied or extracted tree with the upstream one.
public func treeContents(_ dir: String) -> [String: Data] {
    var out: [String: Data] = [:]
    guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
    while let p = e.nextObject() as? String {
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir)
        if !isDir.boolValue { out[p] = FileManager.default.contents(atPath: dir + "/" + p) }
    }
    return out
}
