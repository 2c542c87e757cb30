#!/usr/bin/env bash
# make test-asan / make test-tsan: builds the package and its tests with one sanitizer (address:
# AddressSanitizer, with LeakSanitizer; thread: ThreadSanitizer) in a build folder of its own
# (.build-asan, .build-tsan), then runs the Swift suites serially (not the Python interop tests).
#
# The end-to-end tests spawn courier-stage, courier-deliver, courier-inboxd and courier-tuf from
# the test binary's directory, so the programs run sanitized too. A report in a child cannot pass
# silently: every sanitized process, the test runner and each program, writes its reports into
# REPORTS/<asan|tsan>.<pid> (log_path) instead of stderr, and this script fails, printing them,
# if any such file exists after the run — whatever the tests made of the child's exit status
# (a test that expects exit 1 would otherwise take ASan's exit 1 for the program's own).
#
# Everything runs several times slower under the sanitizers (ThreadSanitizer most), yet no
# test's wall-clock wait or timeout needed lengthening: the tests run unchanged.
#
# FILTER=regex runs only the matching tests (swift test --filter), for iterating.
set -uo pipefail
san=${1:?usage: run.sh address|thread}
case $san in
  address) short=asan ;;
  thread)  short=tsan ;;
  *) echo "run.sh: unknown sanitizer '$san' (address or thread)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
root=$PWD
SWIFT=${SWIFT:-swift}
scratch=$root/.build-$short
reports=$scratch/sanitizer-reports
supp=$root/scripts/sanitizers

$SWIFT build --build-tests --sanitize="$san" --scratch-path "$scratch" || exit 1

rm -rf "$reports"
mkdir -p "$reports"
# For the few tests that cannot run sanitized (Tests/TUFTests/CLITests.swift, faketime).
export COURIER_SANITIZER=$san
if [ "$san" = address ]; then
  # halt_on_error is ASan's default: the first memory error ends the process (exit 1, and the report file).
  export ASAN_OPTIONS="log_path=$reports/asan:halt_on_error=1:detect_leaks=1:suppressions=$supp/asan.supp:print_suppressions=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
else
  # All races of the run are collected (halt_on_error=0); a process that raced exits 66 at its end.
  export TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=0:exitcode=66:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
fi

$SWIFT test --skip-build --no-parallel --sanitize="$san" --scratch-path "$scratch" ${FILTER:+--filter "$FILTER"}
status=$?

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
  for f in "${found[@]}"; do
    echo "==== $f"
    cat "$f"
  done
  echo "test-$short: FAILED: ${#found[@]} process(es) wrote a sanitizer report (above; kept in $reports)" >&2
  exit 1
fi
if [ $status -ne 0 ]; then
  echo "test-$short: FAILED: the tests failed (exit $status); no sanitizer report was written" >&2
  exit $status
fi
echo "test-$short: no sanitizer report from the test runner or any program it started"
