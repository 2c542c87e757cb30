import ArgumentParser
import StageCLI

/// The executable is only this: everything lives in StageCLI and the libraries.
@main
enum CourierStageMain {
    static func main() async {
        // Inside an async function the async `main` of AsyncParsableCommand is the one called.
        await (StageCommand.self as any AsyncParsableCommand.Type).main()
    }
}
