import ArgumentParser
import InboxCLI

/// The executable is only this: everything lives in InboxCLI and the libraries.
///
/// A synchronous `main`, on purpose: an async entry point runs the command on Swift's global
/// executor, which starts libdispatch's worker pool, whose monitor then wakes the process every
/// second for as long as it lives. The daemon must sleep in the kernel when idle.
@main
enum CourierInboxdMain {
    static func main() {
        InboxdCommand.main()
    }
}
