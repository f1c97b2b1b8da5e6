# The two commands a new user needs: `make demo` and `make test`. Both install what is missing.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
SPRUCE  := $(BUILD)/tools/spruce/spruce

.PHONY: all deps configure build test demo fresh-test clean

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

clean:
	rm -rf $(BUILD)
