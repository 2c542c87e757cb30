import ArgumentParser
import PullCLI

/// The executable is only this: everything lives in PullCLI and the libraries.
@main
enum CourierPullMain {
    static func main() async {
        // Inside an async function the async `main` of AsyncParsableCommand is the one called.
        await (PullCommand.self as any AsyncParsableCommand.Type).main()
    }
}
