import CourierFuzzing
import Foundation

// courier-fuzz: libFuzzer over one of CourierFuzzing's targets. Run by scripts/fuzz/run.sh
// (`make fuzz`); libFuzzer's own flags pass through (-max_total_time=, -runs=, a corpus dir…).
// Environment: COURIER_FUZZ_TARGET (required: a name from `FuzzTargets.all`);
// COURIER_FUZZ_LIST=1 prints the targets (name, tab, summary) and exits.
let env = ProcessInfo.processInfo.environment
if env["COURIER_FUZZ_LIST"] == "1" {
    for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
    exit(0)
}
guard let name = env["COURIER_FUZZ_TARGET"], let target = FuzzTargets.named(name) else {
    FileHandle.standardError.write(
        Data(
            "courier-fuzz: set COURIER_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n"
                .utf8))
    exit(2)
}
current = target
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
