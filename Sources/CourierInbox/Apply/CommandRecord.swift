import CourierCore
@preconcurrency import Glibc

/// The process group of the test or apply command now running, recorded in
/// `state_dir/command.pid` while it runs, so that a daemon restarted after a SIGKILL can end what
/// the killed one left behind before it touches the store.
///
/// `PR_SET_PDEATHSIG` (see `courier_spawn_begin`) kills the command's first process when the daemon
/// dies, but not what that process started (`sh -c 'sleep 60; reload'` leaves `sleep` running,
/// reparented to init), and those would go on working on a tree the restarted daemon removes.
/// The record holds the group id, the leader's start time and the boot id: after a reboot, or
/// once the group is gone and its number reused by a younger group, nothing is killed.
public enum CommandRecord {
    public static func path(stateDir: String) -> String { stateDir + "/command.pid" }

    /// Records a running command's process group (best effort: a record that cannot be written
    /// only weakens the clean-up after a crash, it must not fail the apply).
    static func write(_ recordPath: String?, pgid: pid_t) {
        guard let recordPath else { return }
        let line = "\(pgid) \(startTime(pgid) ?? 0) \(bootID())\n"
        try? Sys.writeFileAtomically(recordPath, Array(line.utf8), mode: 0o600, durable: false)
    }

    static func clear(_ recordPath: String?) {
        guard let recordPath else { return }
        try? Sys.unlink(recordPath)
    }

    /// Kills (SIGKILL) every process still in the recorded group, waits up to two seconds for
    /// them to go, and removes the record. Returns how many processes were killed.
    @discardableResult
    public static func endOrphans(_ recordPath: String) -> Int {
        guard let bytes = try? Sys.readFile(recordPath, limit: 4096) else { return 0 }
        defer { clear(recordPath) }
        let parts = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 3, let pgid = pid_t(parts[0]), pgid > 1, let started = UInt64(parts[1]),
            String(parts[2]) == bootID()
        else { return 0 }
        var members = groupMembers(pgid, startedAtOrAfter: started)
        let killed = members.count
        guard killed > 0 else { return 0 }
        for p in members { Sys.signal(p, SIGKILL) }
        let deadline = Sys.monotonicSeconds() + 2
        while !members.isEmpty && Sys.monotonicSeconds() < deadline {
            usleep(20_000)
            members = groupMembers(pgid, startedAtOrAfter: started)
        }
        return killed
    }

    /// Processes whose process group is `pgid` and that started no earlier than the recorded
    /// leader (a group number can only be reused once the whole group is gone).
    static func groupMembers(_ pgid: pid_t, startedAtOrAfter started: UInt64) -> [pid_t] {
        guard let names = try? Sys.listDirectory("/proc") else { return [] }
        var out: [pid_t] = []
        for n in names {
            guard let pid = pid_t(n), let st = stat(pid), st.pgrp == pgid, st.start >= started else { continue }
            out.append(pid)
        }
        return out
    }

    static func startTime(_ pid: pid_t) -> UInt64? { stat(pid)?.start }

    /// Fields 5 (process group) and 22 (start time in clock ticks since boot) of
    /// `/proc/PID/stat`, counted after the command name, which is in parentheses and may itself
    /// hold spaces and parentheses. A zombie counts as gone.
    static func stat(_ pid: pid_t) -> (pgrp: pid_t, start: UInt64)? {
        guard let b = try? Sys.readFile("/proc/\(pid)/stat", limit: 4096),
            let close = b.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        let rest = String(decoding: b[(close + 1)...], as: UTF8.self).split(separator: " ")
        // rest[0] is field 3 (state), so field k is rest[k - 3].
        guard rest.count > 19, rest[0] != "Z", let pgrp = pid_t(rest[2]), let start = UInt64(rest[19]) else {
            return nil
        }
        return (pgrp, start)
    }

    static func bootID() -> String {
        guard let b = try? Sys.readFile("/proc/sys/kernel/random/boot_id", limit: 128) else { return "unknown" }
        return String(decoding: b, as: UTF8.self).trimming(" \n")
    }
}
