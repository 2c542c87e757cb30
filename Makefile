# Courier — see README.md. Every target installs what it needs first (scripts/bootstrap.sh).
SWIFT ?= swift
PREFIX ?= /usr/local
DEBUG_BIN := .build/debug
RELEASE_BIN := .build/release

.PHONY: all bootstrap build release test demo bench clean

all: build

bootstrap:
	@bash scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

# Interop tests of the independent Python implementation first, then the Swift suites, whose
# summary is the last line. Serially: several suites run real servers, daemons and copiers
# with timeouts, and on 2 cores parallel suites starve each other into false failures.
test: bootstrap
	$(SWIFT) build --build-tests
	@if [ -d Tests/interop ]; then COURIER_BIN=$(CURDIR)/$(DEBUG_BIN) python3 -m pytest -q -p no:cacheprovider Tests/interop; fi
	$(SWIFT) test --skip-build --no-parallel

demo: release
	@bash scripts/demo.sh $(RELEASE_BIN)

bench: release
	@bash scripts/bench/run-all.sh $(RELEASE_BIN)

clean:
	rm -rf .build .build-*
