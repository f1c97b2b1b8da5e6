# The two commands a new user needs: `make demo` and `make test`. Both install what is missing.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
SPRUCE  := $(BUILD)/tools/spruce/spruce

.PHONY: all deps configure build test demo fresh-test clean test-asan fuzz fuzz-model format format-check

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(SPRUCE)

# make test and make demo in a new minbase Debian 12 root, on a clone of HEAD (root; FRESH_ARGS=--help)
fresh-test:
	bash scripts/fresh-machine-test.sh $(FRESH_ARGS)

# Sanitized tests: every suite, every ISA cap included, built with ASan + UBSan in its own folder;
# any report fails its test. By default without LibTorch (SPRUCE_WITH_TORCH=OFF), as CI runs it:
# the LibTorch adapter's suites pass under the sanitizers too (ASAN_TORCH=ON, in build-asan-torch;
# LibTorch's own library is not instrumented, so only spruce's side of each call is checked), but
# they add ~27 CPU-minutes of build and 6 minutes of tests, more than CI has.
ASAN_TORCH ?= OFF
ASAN_BUILD ?= build-asan$(if $(filter ON,$(ASAN_TORCH)),-torch)
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1" \
	  -DSPRUCE_SANITIZE=ON -DSPRUCE_WITH_TORCH=$(ASAN_TORCH)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	$(ASAN_ENV) ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

# libFuzzer targets (tests/fuzz), built with clang in their own folder; each runs FUZZ_SECONDS
# from its committed corpus, FUZZ_JOBS at a time. Fails on any crash, UB, leak, timeout or
# out-of-memory.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
export FUZZ_SECONDS FUZZ_JOBS

$(FUZZ_BUILD)/CMakeCache.txt:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DSPRUCE_FUZZ=ON -DSPRUCE_WITH_TORCH=OFF -DBUILD_TESTING=OFF

fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target spruce_fuzzers
	bash tests/fuzz/run_fuzzers.sh $(FUZZ_BUILD) safetensors_fuzz recipe_fuzz packed_fuzz

# The converted-model loader's target needs LibTorch, whose headers clang 14 cannot compile in
# C++20: GCC builds it (with libFuzzer's runtime from clang), in its own folder. Not in CI: the
# LibTorch adapter alone takes longer to build under ASan than the CI budget allows.
FUZZ_MODEL_BUILD ?= build-fuzz-model

$(FUZZ_MODEL_BUILD)/CMakeCache.txt:
	cmake -S . -B $(FUZZ_MODEL_BUILD) -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DSPRUCE_FUZZ=ON -DSPRUCE_WITH_TORCH=ON -DBUILD_TESTING=OFF

fuzz-model: deps $(FUZZ_MODEL_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_MODEL_BUILD) -j$(JOBS) --target model_file_fuzz
	bash tests/fuzz/run_fuzzers.sh $(FUZZ_MODEL_BUILD) model_file_fuzz

clean:
	rm -rf $(BUILD) build-asan build-asan-torch $(FUZZ_BUILD) $(FUZZ_MODEL_BUILD)

# The tree's style (.clang-format): `make format` rewrites the C++ sources in place; `make
# format-check` (CI) fails naming every file that differs.
FORMAT_FILES = $(shell git ls-files '*.cpp' '*.hpp')
format: deps
	clang-format -i $(FORMAT_FILES)

format-check: deps
	clang-format --dry-run --Werror $(FORMAT_FILES)
