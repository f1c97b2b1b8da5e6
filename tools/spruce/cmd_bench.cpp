// `spruce bench`: sparse GEMM against oneDNN dense FP32 and INT8, same process, same data.
//
// Flags and printing; the cases, their verification and the timing protocol (interleaved rounds,
// medians, median per-round ratios) are spruce::bench::run_case (include/spruce/bench.hpp).
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "command.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "spruce/bench.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  if (s.empty() || s.back() == ',') out.emplace_back();  // an empty item is an error downstream
  return out;
}

struct Options {
  std::string suite_name, json;
  std::vector<std::string> shapes;
  std::string patterns = "4x1", sparsities = "0.9", dtype = "int8";
  std::string dense_isa;
  int threads = 0, reps = 0;
  bool sparsity_given = false, suite_given = false;
};

// oneDNN reads DNNL_MAX_CPU_ISA when it first dispatches, which `spruce bench` has not done yet.
void cap_dense(const std::string& isa) {
  if (!is_onednn_isa(isa)) usage_error("invalid --dense-isa " + in_quotes(isa) + ": expected " + onednn_isa_list());
  setenv("DNNL_MAX_CPU_ISA", isa.c_str(), 1);
}

std::string suite_help() {
  std::string h;
  for (const auto& name : bench::suite_names()) h += name + " | ";
  return h + "all";
}

void run_bench(const Options& o) {
  check_output_file("--json", o.json, "JSON");  // before the benchmark, so a typo cannot cost the run
  if (!o.dense_isa.empty()) cap_dense(o.dense_isa);
  std::vector<bench::Shape> shapes;
  for (const auto& t : o.shapes) shapes.push_back(bench::parse_shape(t));
  if (o.suite_given && o.suite_name.empty()) usage_error("--suite '': give one of " + suite_help());
  if (!o.suite_name.empty())
    for (auto s : bench::suite(o.suite_name)) shapes.push_back(s);
  if (shapes.empty()) usage_error("nothing to run: give --suite or --shape");
  if (o.dtype != "f32" && o.dtype != "int8") usage_error("invalid --dtype '" + o.dtype + "': expected f32 or int8");
  const int threads = bench::use_threads(o.threads);
  std::vector<Pattern> patterns;
  for (const auto& p : split(o.patterns)) patterns.push_back(Pattern::parse(p));
  std::vector<double> sps;
  const std::vector<std::string> sparsity_texts = split(o.sparsities);
  for (const auto& t : sparsity_texts) {
    double v = 0;
    if (!parse_real(t, v) || !(v >= 0.0 && v < 1.0))
      usage_error("invalid --sparsity " + in_quotes(t) + ": expected a fraction in [0, 1)");
    sps.push_back(v);
  }
  if (const auto i = first_repeat(patterns))
    usage_error("--pattern " + patterns[*i].str() + " is given twice; give it once");
  if (const auto i = first_repeat(sps))
    usage_error("--sparsity " + sparsity_texts[*i] + " is given twice; give it once");
  const auto same_shape = [](const bench::Shape& a, const bench::Shape& b) {
    return a.m == b.m && a.k == b.k && a.n == b.n;
  };
  if (const auto i = first_repeat(shapes, same_shape))
    usage_error("--shape " + bench::to_string(shapes[*i]) + " is given twice (--suite included); give it once");
  if (o.sparsity_given && std::all_of(patterns.begin(), patterns.end(), [](const Pattern& p) { return p.is_nm(); }))
    usage_error("--sparsity acts on block patterns; N:M patterns such as " + patterns[0].str() + " fix their own (" +
                percent(patterns[0].natural_sparsity()) + "): drop --sparsity");
  // Each case's weight, n x k, must hold more than one block of its pattern, and keep one at its
  // sparsity: a single block, or all of them zeroed, measured nothing (4x1 @ 0.9 on 1x1x1 ran 100% sparse).
  for (const bench::Shape& s : shapes)
    for (const Pattern& p : patterns) {
      const std::string weight =
          "the " + std::to_string(s.n) + "x" + std::to_string(s.k) + " weight of --shape " + bench::to_string(s);
      require_blocks_fit(p, s.n, s.k, weight);
      if (p.is_nm()) continue;
      const int64_t blocks = block_grid(p, s.n, s.k).blocks();
      for (size_t i = 0; i < sps.size(); ++i)
        if (std::llround(sps[i] * double(blocks)) >= blocks)
          usage_error("--sparsity " + sparsity_texts[i] + " zeroes all " + std::to_string(blocks) + " blocks of " +
                      weight + " (pattern " + p.str() + "); lower it, or give a larger shape");
    }
  Table table({"m", "k", "n", "pattern", "sparsity", "dtype", "thr", "sparse_impl", "dense_impl", "sparse_us",
               "dense_us", "speedup", "vs_f32", "op_impl", "op_x", "eff_GOP/s"});
  nlohmann::json records = nlohmann::json::array();
  std::mt19937 rng(42);
  int inexact = 0;  // cases where oneDNN's INT8 missed the reference (hosts without VNNI)
  for (const bench::Shape& s : shapes)
    for (const Pattern& p : patterns)
      for (double sp : (p.is_nm() ? std::vector<double>{p.natural_sparsity()} : sps)) {
        const bench::Result r = bench::run_case({s, p, sp, o.dtype == "int8", threads, o.reps}, rng);
        inexact += !r.dense_exact;
        table.add_row({std::to_string(s.m), std::to_string(s.k), std::to_string(s.n), p.str(), percent(r.sparsity),
                       o.dtype, std::to_string(threads), r.sparse_impl, r.dense_impl + (r.dense_exact ? "" : " *"),
                       fixed(r.sparse_us, 1), fixed(r.dense_us, 1), fixed(r.speedup, 2) + "x",
                       fixed(r.speedup_vs_f32, 2) + "x", r.operator_impl, fixed(r.operator_speedup, 2) + "x",
                       fixed(r.eff_gops, 0)});
        records.push_back({{"m", s.m},
                           {"k", s.k},
                           {"n", s.n},
                           {"pattern", p.str()},
                           {"sparsity", r.sparsity},
                           {"dtype", o.dtype},
                           {"threads", threads},
                           {"sparse_impl", r.sparse_impl},
                           {"dense_impl", r.dense_impl},
                           {"sparse_us", r.sparse_us},
                           {"dense_us", r.dense_us},
                           {"speedup", r.speedup},
                           {"dense_f32_us", r.dense_f32_us},
                           {"speedup_vs_f32", r.speedup_vs_f32},
                           {"operator_impl", r.operator_impl},
                           {"operator_us", r.operator_us},
                           {"operator_speedup", r.operator_speedup},
                           {"host_class", std::string(host_class())},
                           {"cpu", std::string(cpu_description())},
                           {"dense_max_isa", bench::dense_max_isa()},
                           {"dense_exact", r.dense_exact},
                           {"verified", true},
                           {"cache", "warm"},
                           {"reps", r.reps}});
      }
  std::cout << "host: " << bench::host_line() << "\n";
  table.print(std::cout);
  std::cout << "speedup = oneDNN dense " << o.dtype << " / sparse, the median of per-round ratios (rounds alternate "
            << "all paths; same process, warm cache); times are medians; vs_f32 = oneDNN FP32 / sparse; op_x = dense / "
            << "SparseLinear with its dense fallback; eff = 2mkn / sparse time\n";
  if (inexact > 0)
    std::cout << "* " << inexact << " case(s): oneDNN's INT8 result differed from the reference. Without VNNI it "
              << "multiplies with vpmaddubsw, whose 16-bit pair sums saturate; spruce's kernels are exact, and its "
              << "operator never falls back to oneDNN INT8 on such a host\n";
  require_standard_output();  // a run that fails replaces nothing
  if (!o.json.empty()) write_json(o.json, records);
}

void add_bench(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench", "sparse GEMM vs oneDNN dense FP32 and INT8 (BENCHMARKS.md protocol)");
  cmd->add_option("--suite", opt->suite_name, suite_help());
  cmd->add_option("--shape", opt->shapes, "MxKxN (m tokens, k = IC, n = OC); repeatable");
  cmd->add_option("--pattern", opt->patterns, "pattern(s), comma-separated: 4x1, 1x4, 4x16, 1x1, 2:4 (N of every M)")
      ->capture_default_str();
  cmd->add_option("--sparsity", opt->sparsities, "fraction(s) of zero weights, comma-separated (ignored for N:M)")
      ->capture_default_str();
  cmd->add_option("--dtype", opt->dtype, "f32 | int8")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads for sparse and dense (default: OpenMP's)")->check(thread_count());
  cmd->add_option("--reps", opt->reps, "timed repetitions per case (default: by size)")->check(int_in(1, 1000000));
  cmd->add_option("--dense-isa", opt->dense_isa,
                  "cap oneDNN's dense baseline at this ISA (its DNNL_MAX_CPU_ISA names, e.g. avx512_core_vnni); "
                  "default: oneDNN's best, which SPRUCE_MAX_ISA caps at avx512_core_vnni only on an AMX host");
  cmd->add_option("--json", opt->json, "write one JSON record per case to FILE")->check(non_empty());
  cmd->callback([opt, cmd] {
    opt->sparsity_given = cmd->count("--sparsity") > 0;
    opt->suite_given = cmd->count("--suite") > 0;
    run_bench(*opt);
  });
}

const Command reg{"bench", add_bench};

}  // namespace
}  // namespace spruce::cli
