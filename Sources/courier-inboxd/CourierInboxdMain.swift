import ArgumentParser
import InboxCLI

/// The executable is only this: everything lives in InboxCLI and the libraries.
@main
enum CourierInboxdMain {
    static func main() async {
        await (InboxdCommand.self as any AsyncParsableCommand.Type).main()
    }
}
