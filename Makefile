# Courier — see README.md. Every target installs what it needs first (scripts/bootstrap.sh).
SWIFT ?= swift
PREFIX ?= /usr/local
DEBUG_BIN := .build/debug
RELEASE_BIN := .build/release

.PHONY: all bootstrap build release test demo bench clean
.PHONY: microbench install uninstall man fuzz fuzz-seeds torture scale-sim

all: build

bootstrap:
	@bash scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build

# Release binaries, for the demo, the benchmarks and `make install`. Besides the Swift runtime,
# they link libarchive, its codecs and libstdc++ from static archives (only what is called; no
# libxml2 or ICU mapped into the daemon), with lld's packed relative relocations (DT_RELR: PIE
# stays, the 2 MB relocation table goes) and no exported symbols. Together these cut the idle
# daemon's RSS by about 5 MiB (docs/ARCHITECTURE.md, "Memory of the idle daemon").
# ARCHIVE_DEPS: what libarchive.a's objects call (the module map links libarchive itself, the
# Swift runtime libstdc++).
STATIC_LIBS := $(CURDIR)/.build/static-libs
ARCHIVE_DEPS := zstd lzma bz2 z nettle
RELEASE_LINK := -Xswiftc -use-ld=lld -Xlinker -L$(STATIC_LIBS) \
	$(foreach lib,$(ARCHIVE_DEPS),-Xlinker -l$(lib)) \
	-Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic

# Then stripped as Debian ships binaries, the debug information kept apart in
# $(DEBUG_INFO)/<program>.debug (a .gnu_debuglink in each binary names it; gdb finds it beside
# the binary or under /usr/lib/debug): docs/ARCHITECTURE.md, "Release binaries".
DEBUG_INFO := .build/debug-info
release: bootstrap
	@bash scripts/build/static-libs.sh $(STATIC_LIBS) archive $(ARCHIVE_DEPS) stdc++
	$(SWIFT) build -c release --static-swift-stdlib $(RELEASE_LINK)
	@bash scripts/build/split-debug.sh $(RELEASE_BIN) $(DEBUG_INFO) $(COURIER_PROGRAMS)
	@bash scripts/build/check-release.sh $(RELEASE_BIN) $(DEBUG_INFO)

# Interop tests of the independent Python implementation first, then the Swift suites, whose
# summary is the last line. Serially: several suites run real servers, daemons and copiers
# with timeouts, and on 2 cores parallel suites starve each other into false failures.
test: bootstrap
	@bash scripts/check/libc-door.sh
	$(SWIFT) build --build-tests
	@if [ -d Tests/interop ]; then COURIER_BIN=$(CURDIR)/$(DEBUG_BIN) python3 -m pytest -q -p no:cacheprovider Tests/interop; fi
	$(SWIFT) test --skip-build --no-parallel

# The Swift suites (not the Python interop tests) under AddressSanitizer, with LeakSanitizer
# (test-asan), and under ThreadSanitizer (test-tsan), serially, each built in a folder of its own
# (.build-asan, .build-tsan); the programs the end-to-end tests start are built sanitized too.
# Every sanitized process writes its reports into .build-<asan|tsan>/sanitizer-reports/ instead
# of stderr, so a report in a child cannot pass as the program's own exit status: if any report
# file exists after the run the target fails and prints them. Suppressions of what is not
# Courier's, each with its reason: scripts/sanitizers/*.supp; the runner: scripts/sanitizers/run.sh.
.PHONY: test-asan test-tsan
test-asan: bootstrap
	@SWIFT="$(SWIFT)" bash scripts/sanitizers/run.sh address
test-tsan: bootstrap
	@SWIFT="$(SWIFT)" bash scripts/sanitizers/run.sh thread

# The torture suites (docs/RELIABILITY.md) at full size: kill storms of each program, disk full,
# a 10,000-package burst with inotify overflow, a 10-minute soak. `make test` runs them short.
# Their figures are collected in .build/torture.log.
torture: bootstrap
	$(SWIFT) build --build-tests
	@rm -f $(CURDIR)/.build/torture.log
	COURIER_TORTURE=full COURIER_TORTURE_LOG=$(CURDIR)/.build/torture.log $(SWIFT) test --skip-build --no-parallel --filter TortureTests
	@cat $(CURDIR)/.build/torture.log

demo: release
	@bash scripts/demo.sh $(RELEASE_BIN)

# docs/SCALE.md's check: 10,000 simulated pulling clients against nginx serving a real outbox
# (scripts/scale/pullsim.sh; SIM_CLIENTS, SIM_CONCURRENCY, SIM_DB_MIB, SIM_WORKERS). Report in
# .build/pullsim/.
scale-sim: release
	@bash scripts/scale/pullsim.sh $(RELEASE_BIN)

# Benchmarks (docs/BENCHMARKS.md): every scripts/bench/*.sh, one table; the page is rewritten
# after a complete run. BENCH="verify inboxd": only those; BENCH_QUICK=1: small sizes (a smoke
# test); BENCH_MICRO=1: also the package-benchmark micro-benchmarks (a long first build);
# BENCH_BIN=DIR: measure those binaries and build nothing (default: `make release`).
BENCH_BIN ?=
bench: $(if $(BENCH_BIN),,release)
	@BENCH="$(BENCH)" BENCH_QUICK="$(BENCH_QUICK)" BENCH_MICRO="$(BENCH_MICRO)" \
	    bash scripts/bench/run-all.sh $(or $(BENCH_BIN),$(RELEASE_BIN))

# libFuzzer over every parser of attacker-reachable bytes (Fuzz/, CourierFuzzing; issue #15).
# SECONDS is the total budget, split evenly over the targets (or TARGETS="manifest patch").
# Findings are copied into Fixtures/fuzz/<target>/, where `make test` replays them.
SECONDS ?= 600
TARGETS ?=
fuzz: bootstrap
	@FUZZ_SECONDS="$(SECONDS)" FUZZ_TARGETS="$(TARGETS)" bash scripts/fuzz/run.sh
# The generated seeds (signed packages, patches, vendor signatures: Fixtures/fuzz/*/ok-*), rewritten.
fuzz-seeds: bootstrap
	$(SWIFT) build --build-tests
	COURIER_WRITE_FUZZ_SEEDS=1 $(SWIFT) test --skip-build --filter FuzzCorpusTests/freshSeedsAreAccepted

# In-process micro-benchmarks of CourierCore (Benchmarks/, package-benchmark), in a package and
# a build folder of their own so that `make build` and `make test` never build them.
MICRO_SCRATCH ?= $(CURDIR)/.build-bench
microbench: bootstrap
	@MICRO_SCRATCH="$(MICRO_SCRATCH)" BENCH_QUICK="$(BENCH_QUICK)" bash scripts/bench/micro/run.sh

# Man pages man/courier-{stage,deliver,inboxd,tuf,pull}.1, generated from the programs' own help by
# swift-argument-parser's generate-manual plugin (offline: it builds the package, runs each
# program with --experimental-dump-help and writes mdoc). Committed, so that `make install`
# needs no Swift build of its own; run `make man` after changing a command's options. A blank
# line in a help text becomes a paragraph macro (.Pp): groff warns about blank lines in mdoc.
MAN_SCRATCH ?= $(CURDIR)/.build-man
MAN_CONFIG ?= debug
MAN_DATE ?= $(shell git log -1 --format=%cs 2>/dev/null || date -u +%Y-%m-%d)
MAN_OUT = $(MAN_SCRATCH)/plugins/GenerateManual/outputs
man: bootstrap
	@rm -f $(foreach p,$(COURIER_PROGRAMS),"$(MAN_OUT)/$(p)/$(p).1")
	$(SWIFT) package --scratch-path $(MAN_SCRATCH) plugin generate-manual --configuration $(MAN_CONFIG) --date $(MAN_DATE)
	@mkdir -p man
	@for p in $(COURIER_PROGRAMS); do sed 's/^$$/.Pp/' "$(MAN_OUT)/$$p/$$p.1" > man/$$p.1 && echo "man/$$p.1"; done

# ---- Debian package (docs/INSTALL.md) ------------------------------------------------------
# make deb [DEB_OUT=.build/deb] [DEB_REVISION=1] [DEB_BIN=DIR] [DEB_DEBUG_INFO=DIR] [DEB_COMPRESSION=xz]
# $(DEB_OUT)/courier_<CourierVersion>-<DEB_REVISION>_<arch>.deb from the stripped release binaries
# (`make release` first, unless DEB_BIN names binaries to package as they are), and
# courier-dbgsym_<version>_<arch>.deb from $(DEBUG_INFO) (DEB_DEBUG_INFO= : none; with DEB_BIN,
# only when named): dpkg-deb, the control files in packaging/debian, scripts/build/deb.sh.
# `make test-deb` runs its test alone: build, lintian, dpkg install, upgrade and purge on this
# machine (root only).
DEB_OUT ?= .build/deb
DEB_REVISION ?= 1
DEB_BIN ?=
DEB_DEBUG_INFO ?= $(if $(DEB_BIN),,$(DEBUG_INFO))
.PHONY: deb test-deb
deb: $(if $(DEB_BIN),,release)
	@bash scripts/build/deb.sh $(or $(DEB_BIN),$(RELEASE_BIN)) $(DEB_OUT) $(DEB_REVISION) $(DEB_DEBUG_INFO)
test-deb: bootstrap
	python3 -m pytest -q -p no:cacheprovider Tests/interop/test_deb.py

# ---- install / uninstall (docs/OPERATIONS.md, "Installing") ---------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/tmp/pkgroot] [INSTALL_BIN=.build/release]
# Installs what is already built (run `make release` first, as yourself); builds nothing.
#   $(PREFIX)/bin/courier-{stage,deliver,inboxd,tuf,pull}
#   $(SYSTEMD_UNIT_DIR)/courier-inboxd.service, courier-{stage,pull}.{service,timer}  (paths set to PREFIX)
#   $(PREFIX)/share/man/man1/courier-*.1, man5/courier-*.toml.5                (from man/)
#   $(PREFIX)/share/courier/examples/{stage,inboxd,policy}.toml, courier-{stage,pull}.crontab
#   $(PREFIX)/share/doc/courier/*.md                                           (the units' Documentation=)
#   $(PREFIX)/share/courier/install-manifest.txt: every file and every directory it created,
#   which `make uninstall` (same PREFIX and DESTDIR) removes, and nothing else.
# Never touches /etc: configuration, keys and `systemctl enable` are the operator's.
INSTALL_BIN ?= $(RELEASE_BIN)
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
COURIER_PROGRAMS := courier-stage courier-deliver courier-inboxd courier-tuf courier-pull

define COURIER_INSTALL_SH
set -eu
case $$PREFIX in /*) ;; *) echo "make install: PREFIX must be an absolute path (got '$$PREFIX')" >&2; exit 2 ;; esac
case $$UNITDIR in /*) ;; *) echo "make install: SYSTEMD_UNIT_DIR must be an absolute path" >&2; exit 2 ;; esac
for p in $$PROGRAMS; do
    [ -x "$$BIN/$$p" ] || { echo "make install: $$BIN/$$p is missing: run 'make release' first, or name the binaries with INSTALL_BIN=DIR" >&2; exit 1; }
done
manifest=$$PREFIX/share/courier/install-manifest.txt
list=$$(mktemp); trap 'rm -f "$$list"' EXIT
# mkd DIR: creates DIR and its missing parents, recording each one created ("path/").
mkd() {
    local missing= d=$$1
    # Up to the first directory that exists under DESTDIR; "/" ends it (a DESTDIR not yet there).
    while [ ! -d "$$DESTDIR$$d" ] && [ "$$d" != / ]; do missing="$$d $$missing"; d=$$(dirname "$$d"); done
    for d in $$missing; do install -d -m 0755 "$$DESTDIR$$d"; echo "$$d/" >> "$$list"; done
}
# put MODE SRC DST [sed]: installs SRC as DST (a path under PREFIX); with "sed", /usr/local/ in
# the file becomes PREFIX/ (units, crontab).
put() {
    mkd "$$(dirname "$$3")"
    if [ "$${4:-}" = sed ]; then
        sed "s|/usr/local/|$$PREFIX/|g" "$$2" > "$$DESTDIR$$3.tmp"
        chmod "$$1" "$$DESTDIR$$3.tmp"; mv -f "$$DESTDIR$$3.tmp" "$$DESTDIR$$3"
    else
        install -m "$$1" "$$2" "$$DESTDIR$$3"
    fi
    echo "$$3" >> "$$list"; echo "  $$DESTDIR$$3"
}
echo "make install: into $$DESTDIR$$PREFIX"
for p in $$PROGRAMS; do put 0755 "$$BIN/$$p" "$$PREFIX/bin/$$p"; done
for u in scripts/systemd/*.service scripts/systemd/*.timer scripts/systemd/*.path; do put 0644 "$$u" "$$UNITDIR/$${u##*/}" sed; done
for m in man/*.1; do if [ -f "$$m" ]; then put 0644 "$$m" "$$PREFIX/share/man/man1/$${m##*/}"; fi; done
for m in man/*.5; do if [ -f "$$m" ]; then put 0644 "$$m" "$$PREFIX/share/man/man5/$${m##*/}"; fi; done
for e in scripts/examples/*.toml; do put 0644 "$$e" "$$PREFIX/share/courier/examples/$${e##*/}"; done
put 0644 scripts/cron/courier-stage.crontab "$$PREFIX/share/courier/examples/courier-stage.crontab" sed
put 0644 scripts/cron/courier-pull.crontab "$$PREFIX/share/courier/examples/courier-pull.crontab" sed
for d in README.md docs/*.md; do put 0644 "$$d" "$$PREFIX/share/doc/courier/$${d##*/}"; done
# A second install over a first keeps what the first recorded (its directories above all).
mkd "$$PREFIX/share/courier"
if [ -f "$$DESTDIR$$manifest" ]; then cat "$$DESTDIR$$manifest" >> "$$list"; fi
{ echo "# Written by 'make install' on $$(date -u +%Y-%m-%dT%H:%M:%SZ): what it installed under PREFIX=$$PREFIX."
  echo "# 'make uninstall PREFIX=$$PREFIX' removes these files, then these directories (lines ending"
  echo "# in /, created by the install) when they are empty."
  grep -v '^#' "$$list" | sort -u; } > "$$DESTDIR$$manifest.tmp"
mv -f "$$DESTDIR$$manifest.tmp" "$$DESTDIR$$manifest"
echo "  $$DESTDIR$$manifest"
echo "make install: done. Not done (the operator's call): configuration in /etc/courier (examples in"
echo "  $$PREFIX/share/courier/examples), keys, 'systemctl daemon-reload' and 'systemctl enable' (docs/OPERATIONS.md)."
case $$UNITDIR in /etc/systemd/system|/usr/lib/systemd/system|/lib/systemd/system|/usr/local/lib/systemd/system) ;;
    *) echo "  systemd does not look in $$UNITDIR: 'systemctl link $$UNITDIR/courier-inboxd.service' (etc.), or SYSTEMD_UNIT_DIR=/etc/systemd/system." ;;
esac
endef
export COURIER_INSTALL_SH

define COURIER_UNINSTALL_SH
set -eu
manifest=$$DESTDIR$$PREFIX/share/courier/install-manifest.txt
[ -f "$$manifest" ] || { echo "make uninstall: $$manifest not found: nothing was installed with PREFIX=$$PREFIX$${DESTDIR:+ DESTDIR=$$DESTDIR}" >&2; exit 1; }
echo "make uninstall: what $$manifest lists"
copy=$$(mktemp); trap 'rm -f "$$copy"' EXIT
grep -v '^#' "$$manifest" > "$$copy" || true
while IFS= read -r p; do
    case $$p in
        */) continue ;;
        "$$PREFIX"/*) ;;
        *) echo "  skipped $$p: not under $$PREFIX" >&2; continue ;;
    esac
    if [ -e "$$DESTDIR$$p" ] || [ -L "$$DESTDIR$$p" ]; then rm -f "$$DESTDIR$$p"; echo "  removed $$DESTDIR$$p"; fi
done < "$$copy"
rm -f "$$manifest"; echo "  removed $$manifest"
# Directories the install created, deepest first; one that holds anything else stays.
grep '/$$' "$$copy" | sort -r | while IFS= read -r d; do
    if rmdir "$$DESTDIR$${d%/}" 2>/dev/null; then echo "  removed $$DESTDIR$$d"; fi
done
echo "make uninstall: done (a unit still enabled: 'systemctl disable --now courier-inboxd' etc. first)."
endef
export COURIER_UNINSTALL_SH

install:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN="$(INSTALL_BIN)" UNITDIR="$(SYSTEMD_UNIT_DIR)" \
	    PROGRAMS="$(COURIER_PROGRAMS)" bash -c "$$COURIER_INSTALL_SH"

uninstall:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash -c "$$COURIER_UNINSTALL_SH"

clean:
	rm -rf .build .build-*
