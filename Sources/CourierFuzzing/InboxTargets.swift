import CourierCore
import CourierInbox

/// The client daemon's parsers: its configuration and the kernel's inotify byte stream.
enum InboxTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget("inbox-config", "inboxd.toml") { b in
            _ = try InboxConfig.parse(String(decoding: b, as: UTF8.self), path: "inboxd.toml")
        },
        FuzzTarget(
            "inotify", "a read() of inotify records, cut anywhere; whatever parses re-encodes and parses back the same"
        ) { b in
            let (events, consumed) = InotifyParser.parse(b)
            FuzzCheck.require(consumed >= 0 && consumed <= b.count, "consumed \(consumed) of \(b.count) bytes")
            let again = InotifyParser.parse(events.flatMap { InotifyParser.encode($0) })
            FuzzCheck.require(again.events == events, "inotify records do not survive encode and parse")
        },
    ]
}
