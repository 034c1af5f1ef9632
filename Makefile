# hale: the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CMAKE ?= cmake
JOBS ?= $(shell nproc)
SHARED ?= $(abspath ../shared)
PYTEST := /usr/bin/python3 -m pytest
# the e2e files the TSan build runs, one list for here and scripts/run-tests.sh
TSAN_E2E := $(shell sed 's/\#.*//' tests/e2e/tsan-suites.txt)
PREFIX ?= /usr/local
DESTDIR ?=
export SHARED CMAKE JOBS

# build/<variant>: scripts/build.sh (shared with scripts/run-tests.sh) keeps
# the generator a build directory was configured with
define cmake_build
	@scripts/build.sh $(1)
endef

.PHONY: build-times upx soak sqlite
.PHONY: check help deps test-deps build release minsize native debug asan tsan run test \
        test-unit test-e2e test-asan test-tsan soak coverage toml-test lint format size fuzz fuzz-short \
        bench k8s-check image test-image clean install abi-check abi-baseline

# `make check` is listed first by `make help` (the order of this file). The
# e2e tests are independent (own ports, own directories), so with Debian's
# python3-pytest-xdist (make test-deps) they run 4 at a time: ~1m40 instead
# of ~5 min here, most of it waiting on timeouts, not CPU.
XDIST := $(shell /usr/bin/python3 -c 'import xdist' 2>/dev/null && printf '%s' '-n 4')
check: debug ## the inner loop (~2 min): debug build, unit tests, the e2e suite on SQLite only
	cd build/debug && ctest --output-on-failure
	HALE_BIN=build/debug/hale HALE_E2E_SQLITE_ONLY=1 $(PYTEST) -q $(XDIST) tests/e2e

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install the Debian packages needed to build (as root)
	@scripts/install-deps.sh build

test-deps: ## install the Debian packages and tools needed by the tests (as root)
	@scripts/install-deps.sh test
	@scripts/install-lint-tools.sh

build: debug ## alias of debug

release: deps ## optimised, LTO, stripped, hardened binary: build/release/hale
	$(call cmake_build,release)

minsize: deps ## size-optimised binary: build/minsize/hale
	$(call cmake_build,minsize)

native: deps ## -march=native binary: build/native/hale
	$(call cmake_build,native)

debug: deps ## -O1 -g with test hooks: build/debug/hale
	$(call cmake_build,debug)

asan: deps ## ASan+UBSan build with test hooks: build/asan/hale
	$(call cmake_build,asan)

tsan: deps ## TSan build with test hooks: build/tsan/hale
	$(call cmake_build,tsan)

sqlite: deps ## SQLite-only build (no libpq, no hiredis; the sqlite image's): build/sqlite/hale
	$(call cmake_build,sqlite)

run: release ## build and start hale on 0.0.0.0:8080 with SQLite at ./data/hale.db
	@mkdir -p data
	exec build/release/hale

install: release ## install bin/hale, libhale.so.0/.a, include/hale, hale.pc, CMake package into $(DESTDIR)$(PREFIX)
	DESTDIR="$(DESTDIR)" $(CMAKE) --install build/release --prefix "$(PREFIX)"

abi-check: ## build libhale (debug) and compare its ABI with abi/libhale.so.0.abi (abidiff)
	@scripts/abi-check.sh

abi-baseline: ## rewrite abi/libhale.so.N.abi from the current sources (after a deliberate ABI change)
	@scripts/abi-check.sh --update

test: test-deps ## install test deps, build, run every suite (ends with a summary line)
	@scripts/run-tests.sh

test-unit: debug ## C unit tests (ctest)
	cd build/debug && ctest --output-on-failure

test-e2e: debug ## e2e tests; installs (as root) and starts PostgreSQL 15 + Redis 7 (scripts/services.sh)
	@echo "test-e2e: the PostgreSQL/Redis tests start their own servers (scripts/services.sh start;"
	@echo "          installs postgresql and redis-server as root when missing; stop: scripts/services.sh stop all)"
	HALE_BIN=build/debug/hale $(PYTEST) -q tests/e2e

test-asan: asan ## unit + e2e suites on the ASan+UBSan build
	cd build/asan && ctest --output-on-failure
	HALE_BIN=build/asan/hale $(PYTEST) -q tests/e2e

test-tsan: tsan ## threaded unit tests and the threaded e2e parts on TSan
	cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure
	HALE_BIN=build/tsan/hale $(PYTEST) -q $(TSAN_E2E)

coverage: test-deps ## line and branch coverage per module of src/ (unit, e2e, toml corpus on build/coverage)
	@scripts/coverage.sh

toml-test: debug ## the TOML decoder against Debian's toml-test corpus and python3-tomli
	tests/toml/toml_test.py build/debug/toml_decoder
	$(PYTEST) -q tests/toml

lint: ## cppcheck, clang-tidy, shellcheck, hadolint (when present)
	@scripts/lint.sh

format: ## clang-format every C file in place
	clang-format -i src/*/*.[ch] src/*/*/*.[ch] tests/unit/*.c tests/tools/*.c fuzz/*.c

size: release minsize ## size breakdown: per object, largest functions, stripped sizes
	@scripts/size.sh

build-times: deps ## clean and incremental build times (B4)
	@scripts/build-times.sh

upx: minsize ## UPX-packed minsize binary build/upx/hale, size and start-up cost (B2)
	@scripts/upx.sh

fuzz: ## run every libFuzzer target for FUZZ_SECONDS (default 300)
	@scripts/fuzz.sh $${FUZZ_SECONDS:-300}

fuzz-short: ## run every fuzzer for 30 s (part of make test)
	@scripts/fuzz.sh 30

# Long loops (make test runs short ones). SOAK_BIN=build/asan/hale for ASan.
SOAK_BIN ?= build/debug/hale
soak: debug ## long fault loops: SQLite power loss at every sync point of 300 PUTs (>= 1,500 trials), history and failover with 10x the operations
	HALE_BIN=$(SOAK_BIN) HALE_POWERLOSS_TRIALS=1200 HALE_POWERLOSS_WRITE_TRIALS=300 \
	  HALE_POWERLOSS_WRITES=300 $(PYTEST) -q -s tests/e2e/test_sqlite_faults.py -k power_loss
	HALE_SOAK=1 HALE_BIN=$(SOAK_BIN) $(PYTEST) -q -s tests/e2e/test_history.py tests/e2e/test_failover.py

# HALE_BENCH_BIN=/path/to/hale measures that binary: no build of this tree.
bench: $(if $(HALE_BENCH_BIN),,release) ## benchmark hale against two axum peers and nginx (prints the table)
	@scripts/install-bench-deps.sh
	@scripts/bench.sh

k8s-check: ## render and strictly validate every Kubernetes overlay
	@scripts/k8s-check.sh

image: ## container images (local Debian bases when missing), SBOMs in build/sbom, sizes
	@scripts/image.sh

test-image: ## container tests on the Docker engine (D1-D5); builds the images first
	@scripts/test-image.sh

clean: ## remove build outputs
	rm -rf build
