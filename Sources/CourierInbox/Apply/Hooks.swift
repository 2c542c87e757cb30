import CourierCore
import Logging

/// A type's `on_refused` and `on_error` commands (inboxd.toml): a way to tell someone — a
/// ticket, a metric, a mail — without polling `status.json`. They run like the test and apply
/// commands (`CommandRunner`: own process group, timeout, dies with the daemon), after the
/// outcome is decided; a hook that fails or times out is logged and changes nothing.
extension InboxProcessor {
    enum HookEvent: String {
        /// A package was refused and quarantined.
        case refused
        /// A transient error (left in the inbox, retrying) or an apply command that failed
        /// with the content kept.
        case error
    }

    /// Runs the hook of `type` for `event`. `type` is the signed manifest's; for a package that
    /// did not verify it is nil, and the type its file name claims is used when that type is
    /// configured (`[types.X]`): the name is untrusted, but the hook only learns what happened to
    /// that file (`COURIER_REVISION` is then empty: a revision is only ever a verified one).
    func runHook(
        _ event: HookEvent, type: String?, package name: String, path: String, code: String, reason: String,
        revision: UInt64?
    ) {
        guard
            let t = type
                ?? Names.parsePackageFileName(name).map(\.type).flatMap({ config.types[$0] != nil ? $0 : nil }),
            let tc = config.typeConfig(t)
        else { return }
        guard let cmd = event == .refused ? tc.onRefused : tc.onError else { return }
        let env = [
            "COURIER_EVENT": event.rawValue, "COURIER_TYPE": t,
            "COURIER_REVISION": revision.map(String.init) ?? "",
            "COURIER_PACKAGE": name, "COURIER_PATH": path,
            "COURIER_CODE": code, "COURIER_REASON": reason,
            "COURIER_INSTALLED_REVISION": store.current(t).map(String.init) ?? "",
        ]
        let hook = event == .refused ? "on_refused" : "on_error"
        do {
            let out = try CommandRunner.run(cmd, environment: env, timeout: tc.hookTimeout, record: commandRecord)
            if !out.ok {
                let why = out.timedOut ? "timed out after \(tc.hookTimeout) s" : "exited \(out.status)"
                logger.warning(
                    "\(t): \(hook) hook \(why) (ignored)\(out.output.isEmpty ? "" : ": " + Escape.text(out.output))")
            } else {
                logger.debug("\(t): \(hook) hook ran for \(Escape.text(name))")
            }
        } catch {
            logger.warning("\(t): \(hook) hook could not run: \(error) (ignored)")
        }
    }
}
