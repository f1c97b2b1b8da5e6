#!/usr/bin/env bash
# Installs every Debian package spruce needs. Idempotent, and quiet when all is present.
set -euo pipefail

packages=(
  cmake g++ g++-12 make pkg-config zlib1g-dev   # g++: the driver CMake looks for, absent on minbase
  libre2-dev                           # linear-time matching of name patterns from users and files
  clang libclang-rt-14-dev             # libFuzzer targets (make fuzz)
  clang-format                         # the tree's style (make format, make format-check)
  libomp-dev                           # clang's OpenMP, for the runtime in the fuzz build (only a Recommends of clang)
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (links oneDNN); OpenBLAS, or BLAS is the slow reference
  libdnnl-dev                          # oneDNN 2.6: dense baseline and dense fallback
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  dataset-fashion-mnist                # IDX files in /usr/share/datasets/fashion-mnist
  gnuplot-nox                          # PNG plots in docs/
  python3                              # demo table and RESULTS.md generation (standard library only)
  ca-certificates                      # HTTPS for the LoadGen download below
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MLPerf LoadGen's C++ source, from its source distribution on PyPI (no Debian package has it),
# pinned by version and SHA-256, unpacked into third_party/ (ignored by git; CMake builds it).
bash "$(dirname "$0")/fetch-loadgen.sh"
