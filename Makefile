# Thin wrapper over CMake/CTest; every target installs what it is missing first.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
LISTEN     ?= 127.0.0.1:8080
STORE      ?= sqlite:./registry.db
CTEST_ARGS ?=
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 10

.PHONY: all deps build build-asan run test test-deps test-release test-asan format format-check clean

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_ASAN)/Makefile:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DLR_SANITIZE=ON

build-asan: deps $(BUILD_ASAN)/Makefile
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	@echo "lambda-registry on http://$(LISTEN) with store $(STORE); try:"
	@echo "  curl -sS --data-binary @sample-data/data.json http://$(LISTEN)/generate"
	$(BUILD)/lambda-registry serve --listen $(LISTEN) --store $(STORE)

# make test installs the test packages (cmocka, haproxy, ...), then
# configures each build with its tests (LR_TESTS=ON; a build directory that
# was configured without them, e.g. by make run, is configured again).
# -k: a failure in one build does not hide the results of the others.
test:
	$(MAKE) -k test-release test-asan test-fuzz

test-deps:
	@scripts/deps.sh build test

test-release: test-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLR_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && rc=0 && ctest --output-on-failure --output-junit ctest-junit.xml \
		-j $(JOBS) $(CTEST_ARGS) || rc=$$?; \
		python3 $(CURDIR)/scripts/ctest-skipped.py ctest-junit.xml; exit $$rc

test-asan: test-deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DLR_SANITIZE=ON -DLR_TESTS=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && rc=0 && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LR_SANITIZED=1 ctest --output-on-failure --output-junit ctest-junit.xml \
		-j $(JOBS) $(CTEST_ARGS) || rc=$$?; \
		python3 $(CURDIR)/scripts/ctest-skipped.py ctest-junit.xml; exit $$rc

format:
	clang-format -i src/*.[ch] src/*/*.[ch] tests/*/*.c fuzz/*.[ch] bench/*.c

format-check:
	clang-format --dry-run --Werror src/*.[ch] src/*/*.[ch] tests/*/*.c fuzz/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

# The AWS Lambda zip (provided.al2023): bootstrap and the libraries it needs.
.PHONY: lambda-package
lambda-package: deps $(BUILD)/Makefile
	@scripts/deps.sh lambda
	cmake --build $(BUILD) -j $(JOBS) --target lambda-registry-lambda
	scripts/lambda-package.sh $(BUILD)/lambda-registry-lambda $(BUILD)/lambda-registry-lambda.zip

# The Debian package: build/lambda-registry_<version>_<arch>.deb, lintian-clean.
# deb-check installs it into a pristine Debian 12 and runs it there.
.PHONY: deb deb-check
deb:
	@scripts/deps.sh deb
	scripts/build-deb.sh $(BUILD)

deb-check: deb
	scripts/deb-check.sh $(BUILD)

# Benchmarks of issue 7 (wrk, scale, DynamoDB via dynalite); writes bench/RESULTS.md.
BENCH_ARGS ?=
.PHONY: bench
bench: build
	@scripts/deps.sh bench
	python3 bench/run.py --build $(BUILD) $(BENCH_ARGS)

# Issue 14: container changes through the runtime API versus reloads (real
# HAProxy on loopback); writes bench/runtime.md.
.PHONY: bench-runtime
bench-runtime: build
	python3 bench/runtime.py --build $(BUILD) --out bench/runtime.md

# libFuzzer harnesses (fuzz/), built with clang, ASan and UBSan.
.PHONY: build-fuzz fuzz test-fuzz

$(BUILD_FUZZ)/Makefile:
	@scripts/deps.sh fuzz
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLR_FUZZ=ON

build-fuzz: deps $(BUILD_FUZZ)/Makefile
	cmake --build $(BUILD_FUZZ) -j $(JOBS)

# Every harness FUZZ_SECONDS seconds; fails on any crash, leak or sanitizer report.
fuzz: build-fuzz
	fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

test-fuzz:
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
