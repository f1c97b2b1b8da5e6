// Writes the seed corpora of the fuzz targets: valid inputs, small (a few KB), one file each.
//
//   build-fuzz/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
//
// Run it after a format changes and commit what it writes; crashing inputs the fuzzers found are
// added by hand under their own names (crash-*), so they are never overwritten here.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "kernels/kernel.hpp"
#include "packed_format.hpp"
#include "spruce/bench.hpp"
#include "spruce/recipe.hpp"
#include "spruce/safetensors.hpp"

using namespace spruce;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string encode(const fuzz::PackedInput& in) {
  const PackedLinear& p = in.p;
  const PackedParts parts = p.weights.parts();
  std::string out;
  const auto kernels = fuzz::spmm_kernels();
  uint8_t kernel = 0;
  while (kernel < kernels.size() && parts.kernel != kernels[kernel]->name) ++kernel;
  auto attribute = [&](const char* name) {
    for (const auto& [key, value] : parts.attributes)
      if (key == name) return uint8_t(value);
    return uint8_t(0);
  };
  auto array = [&](const char* name) {
    const PackedParts::Array* a = parts.find(name);
    std::string bytes;
    const std::string n = name;
    const size_t es = n == "strip_ptr" || n == "strip_wptr" ? 8 : n == "strip_k" || n == "strip_perm" ? 4 : 1;
    fuzz::put(bytes, uint32_t(a ? a->bytes.size() / es : 0));
    if (a) bytes.append(reinterpret_cast<const char*>(a->bytes.data()), a->bytes.size());
    return bytes;
  };
  uint8_t pattern = 0;
  while (pattern < fuzz::kPatternCount && Pattern::parse(fuzz::kPatterns[pattern]) != p.pattern) ++pattern;
  const uint8_t flags = uint8_t((p.int8 ? 1 : 0) | (p.bias.empty() ? 0 : 2) | (in.u8_out ? 4 : 0) |
                                (in.options.fallback == Fallback::Always ? 8 : 0) | (int(in.options.activation) << 4));
  fuzz::put(out, flags);
  fuzz::put(out, kernel);
  fuzz::put(out, pattern);
  fuzz::put(out, attribute("strip_h"));
  fuzz::put(out, attribute("strip_kg"));
  fuzz::put(out, uint8_t(in.m - 1));
  fuzz::put(out, uint16_t(p.out_features));
  fuzz::put(out, uint16_t(p.in_features));
  for (const char* name : {"strip_ptr", "strip_k", "strip_w", "strip_sel", "strip_perm", "strip_wptr"})
    out += array(name);
  return out;
}

// One operator, packed for the kernel this CPU picks (or `forced`), with integer-valued weights;
// nothing when this CPU cannot pack it.
std::optional<fuzz::PackedInput> operator_seed(const char* name, bool int8, const char* forced, double sparsity, int id,
                                               std::mt19937& rng) {
  const Pattern p = Pattern::parse(name);
  const int64_t n = 20 + id % 3 * 6, k = 24 + id % 5 * 8;
  const MatrixF w = bench::pruned_weights(n, k, p, sparsity, rng, {bench::Values::Integers, 3});
  fuzz::PackedInput in;
  in.options.threads = 1;
  in.options.fallback = id % 7 == 3 ? Fallback::Always : Fallback::Never;
  in.options.activation = Activation(id % 3);
  in.options.kernel = forced;
  in.u8_out = int8 && id % 2;
  in.m = 1 + (id * 13) % 70;
  PackedLinear q;
  q.int8 = int8;
  q.out_features = n;
  fuzz::fill_params(q, id % 4 != 1, in.u8_out);
  const float* bias = q.bias.empty() ? nullptr : q.bias.data();
  try {
    if (int8) {
      std::vector<int8_t> w8(w.data.begin(), w.data.end());
      in.p = SparseLinear(w8.data(), n, k, p, q.quant, bias, in.options).packed();
    } else {
      in.p = SparseLinear(w.data.data(), n, k, p, bias, in.options).packed();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "skipped %s: %s\n", name, e.what());
    return std::nullopt;
  }
  in.options.kernel.clear();
  return in;
}

void packed_corpus(const fs::path& dir) {
  std::mt19937 rng(5);
  int id = 0;
  // One operator per pattern, dtype and (for INT8) kernel this CPU can run; small shapes; 70% of
  // the blocks zeroed (or N of every M kept).
  for (const char* name : fuzz::kPatterns)
    for (bool int8 : {false, true})
      for (const char* forced : {"", "s8-spmm-ref"}) {
        if (!int8 && *forced) continue;
        if (const auto in = operator_seed(name, int8, forced, 0.7, id, rng))
          write(dir, "seed-" + std::to_string(id++) + "-" + in->p.weights.kernel(), encode(*in));
      }
  // Layers pruned away entirely: empty strip arrays, which load as null pointers. (Their own
  // generator, so that the seeds above and below stay as committed.)
  std::mt19937 empty_rng(6);
  for (const char* name : {"1x1", "4x1", "1x4", "4x16"})
    for (bool int8 : {false, true})
      if (const auto in = operator_seed(name, int8, "", 1.0, id, empty_rng))
        write(dir, "seed-" + std::to_string(id++) + "-empty-" + in->p.weights.kernel(), encode(*in));
  // The few-row kernels' formats (row lanes, quad masks, windows). Those kernels have a largest m, so they
  // run only beside a main packing and the operator never saves them; a model file holding them
  // is written here, so that their validators are fuzzed too.
  for (const auto& [name, kernel] : {std::pair{"1x4", "s8-spmm-1x4-m2-avx512vnni"},
                                     {"1x1", "s8-spmm-1x1-m4-avx512vnni"},
                                     {"4x1", "s8-spmm-4x1-w-m8-avx512vnni"},
                                     {"1x1", "s8-spmm-1x1-w-m32-avx512vnni"}})
    for (int v = 0; v < 2; ++v) {
      const Pattern p = Pattern::parse(name);
      const int64_t n = 20 + v * 13, k = 24 + v * 20;
      const MatrixF w = bench::pruned_weights(n, k, p, 0.7, rng, {bench::Values::Integers, 3});
      const std::vector<int8_t> w8(w.data.begin(), w.data.end());
      fuzz::PackedInput in;
      in.options.threads = 1;
      in.options.fallback = Fallback::Never;
      in.u8_out = v == 1;
      in.m = 1 + v * 3;
      in.p.int8 = true;
      in.p.out_features = n;
      in.p.in_features = k;
      in.p.pattern = p;
      fuzz::fill_params(in.p, v == 0, in.u8_out);
      in.p.weights = kernels::pack_weights(*kernels::find(kernel), MatrixView<const int8_t>{w8.data(), n, k});
      write(dir, "seed-few-" + std::to_string(v) + "-" + kernel, encode(in));
    }
}

void safetensors_corpus(const fs::path& dir) {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}};
  const float w[6] = {1.f, -2.f, 0.f, 3.5f, -0.f, 7.f};
  f.tensors.push_back(Tensor::from_f32("fc.weight", {2, 3}, w));
  f.tensors.push_back(Tensor{"h", DType::F16, {2}, {0x00, 0x3c, 0x01, 0x80}});
  f.tensors.push_back(Tensor{"b", DType::BF16, {1}, {0x80, 0x3f}});
  f.tensors.push_back(Tensor{"i", DType::I64, {1}, {1, 2, 3, 4, 5, 6, 7, 8}});
  write(dir, "seed-mixed", serialize_safetensors(f));
  SafetensorsFile e;
  write(dir, "seed-empty", serialize_safetensors(e));
  SafetensorsFile s;
  s.tensors.push_back(Tensor{"scalar", DType::F64, {}, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f}});
  s.tensors.push_back(Tensor{"none", DType::U8, {0, 4}, {}});
  s.tensors.push_back(Tensor{"flags", DType::BOOL, {3}, {1, 0, 1}});
  s.metadata = {{"model", "mlp"}, {"spruce.format", "spruce-converted-model/2"}};
  write(dir, "seed-shapes", serialize_safetensors(s));
  // A converted-model-like file: packed arrays of every dtype a model file holds.
  SafetensorsFile m;
  m.metadata = {{"spruce.format", "spruce-converted-model/2"},
                {"spruce.layers", R"([{"name":"mlp.0","variant":"int8-sparse","out_features":4,"in_features":8}])"}};
  m.tensors.push_back(
      Tensor{"mlp.0.packed.strip_ptr", DType::I64, {2}, {0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0}});
  m.tensors.push_back(
      Tensor{"mlp.0.packed.strip_k", DType::I32, {4}, {0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}});
  m.tensors.push_back(Tensor{"mlp.0.packed.strip_w", DType::I8, {16}, std::vector<uint8_t>(16, 1)});
  m.tensors.push_back(Tensor{"mlp.0.packed.strip_sel", DType::U8, {2}, {1, 2}});
  write(dir, "seed-model-like", serialize_safetensors(m));
}

void recipe_corpus(const fs::path& dir, const fs::path& source) {
  write(dir, "seed-minimal.yaml", "target_sparsity: 0.8\n");
  write(dir, "seed-every-key.yaml", R"(target_sparsity: 0.85
pattern: 4x16
pruning_type: magnitude
op_names: ["fc.*", "layer[0-9]+\\.dense"]
excluded_op_names: [head]
pruning_op_types: [Linear]
start_step: 10
end_step: 1010
pruning_frequency: 50
pruning_scope: local
sparsity_decay_type: cube
criterion_reduce_type: max
min_sparsity_ratio_per_op: 0.1
max_sparsity_ratio_per_op: 0.95
reg_type: group_lasso
reg_coeff: 0.0002
straight_through: true
straight_through_decay: 0.0002
)");
  write(dir, "seed-groups.yaml", R"(target_sparsity: 0.9
pattern: 4x1
pruning_configs:
  - op_names: ["conv"]
    pattern: "2:4"
    gradual_nm: true
  - op_names: ["fc"]
    target_sparsity: 0.7
    pruning_op_types: Conv
    reg_type: none
)");
  write(dir, "seed-flow.yaml",
        "{target_sparsity: 0.5, pattern: 1xchannel, pruning_configs: [{op_names: [a, b]}], reg_type: null}\n");
  // The recipes the repository ships, as users write them.
  for (const char* rel : {"examples/recipes/mlp-mixed.yaml", "scripts/recipes/mlp-4x1-90-late.yaml"}) {
    std::ifstream in(source / rel);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!text.empty()) write(dir, "seed-" + fs::path(rel).filename().string(), text);
  }
  // And what to_yaml() writes.
  write(dir, "seed-to-yaml.yaml", Recipe::parse("pruning_configs: [{pattern: '2:4'}, {op_names: [x]}]").to_yaml());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  safetensors_corpus(out / "safetensors_fuzz");
  recipe_corpus(out / "recipe_fuzz", SPRUCE_SOURCE_DIR);
  packed_corpus(out / "packed_fuzz");
  return 0;
}
