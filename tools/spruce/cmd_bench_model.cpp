// spruce bench-model dlrm: whole-model Offline and Server throughput through MLPerf LoadGen, in the
// seed's table form, with the seed's own figures beside it.
#include <strings.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_minilm.hpp"
#include "command.hpp"
#include "dlrm/dlrm_bench.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "spruce/attention.hpp"
#include "spruce/bench.hpp"
#include "spruce/error.hpp"
#include "spruce/mlperf.hpp"
#include "spruce/recipe.hpp"
#include "spruce/safetensors.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct BenchModelArgs {
  std::string model, pattern = "4x16", json, fallback = "auto", attention = "f32";
  bool bf16_attention = false;        // --bf16-attention, the same as --attention bf16
  std::string work_dir = "out/dlrm";  // trained models are cached here
  uint64_t seed = 1;
  dlrm::DlrmBenchOptions o;
  minilm::MinilmBenchOptions minilm;  // --sparse-model, --dense-model, --seq-length; shares --batches, --threads
  CLI::App* cmd = nullptr;
};

const dlrm::DlrmBenchRecord* find(const std::vector<dlrm::DlrmBenchRecord>& rs, const std::string& v,
                                  const std::string& s) {
  for (const auto& r : rs)
    if (r.variant == v && r.scenario == s) return &r;
  usage_error("internal: no " + v + " " + s + " record");
}

// A LoadGen rate for the table: its QPS (with a ratio to INT8 dense), or why there is none.
std::string rate_cell(const dlrm::DlrmBenchRecord& r, const dlrm::DlrmBenchRecord* int8) {
  if (!r.run) return "none VALID";
  std::string cell = fixed(r.run->qps, 0);
  if (int8 && int8->run && int8->run->qps > 0) cell += " (" + fixed(r.run->qps / int8->run->qps, 2) + "x)";
  if (!r.run->valid) cell += " INVALID";
  return cell;
}

void print_table(const dlrm::DlrmBenchReport& report, const dlrm::DlrmBenchOptions& o) {
  const auto& rs = report.records;
  const char* variants[] = {"fp32-dense", "int8-dense", "int8-sparse"};
  const auto* base = find(rs, "fp32-dense", "offline");
  Table t({"", "Dense Model (FP32)", "Dense Model (INT8)", "Sparse Model (INT8)"});
  std::vector<std::string> acc{"Accuracy"}, auc{"AUC"}, off{"Offline QPS"}, srv{"Online (Server) QPS"},
      fp32x{"vs FP32 dense (Offline)"}, detail{"Offline batch / Server p99"};
  for (const char* v : variants) {
    const auto* a = find(rs, v, "offline");
    const auto* s = find(rs, v, "server");
    const bool int8 = std::string(v) != "fp32-dense";
    acc.push_back(percent(a->accuracy, 2) + " (" + percent(a->accuracy / base->accuracy, 2) + ")");
    auc.push_back(fixed(a->auc, 4));
    off.push_back(rate_cell(*a, int8 ? find(rs, "int8-dense", "offline") : nullptr));
    srv.push_back(rate_cell(*s, int8 ? find(rs, "int8-dense", "server") : nullptr));
    fp32x.push_back(a->run && base->run ? fixed(a->run->qps / base->run->qps, 2) + "x" : "-");
    detail.push_back(std::to_string(a->batch) + " / " + (s->run ? fixed(s->run->p99_ms, 1) + " ms" : "-"));
  }
  for (auto* row : {&acc, &auc, &off, &srv, &fp32x, &detail}) t.add_row(*row);
  const auto& offline = *find(rs, "int8-sparse", "offline")->run;
  std::cout << "\nDLRM (MLPerf shapes; SYNTHETIC Criteo-shaped data), sparse " << o.pattern.str() << " at "
            << percent(o.sparsity, 0) << ", " << o.threads << " threads. Every model trained on the same "
            << report.pretrain_clicks << " + " << report.finetune_clicks << " clicks, " << report.steps
            << " steps. Rates from MLPerf LoadGen (VALID unless marked), Server p99 bound "
            << fixed(offline.target_latency_ms, 0) << " ms"
            << (offline.shortened ? ", runs SHORTENED to " + fixed(offline.min_duration_s, 0) + " s (LoadGen's: 600 s)"
                                  : std::string())
            << "; ratios in parentheses against INT8 dense\nhost: " << bench::host_line() << "\n\n";
  t.print(std::cout);
  std::cout << "\nThe seed's table (MLPerf Inference submissions: a full Xeon server, Criteo Terabyte):\n\n";
  Table seed({"", "Dense Model (FP32)", "Dense Model (INT8)", "Sparse Model (INT8)"});
  seed.add_row({"Accuracy", "80.25% (100%)", "80.21% (99.96%)", "79.91% (99.57%)"});
  seed.add_row({"Offline QPS", "5732", "23174 (1.0x)", "36883 (1.6x)"});
  seed.add_row({"Online QPS", "NA", "20245 (1.0x)", "30396 (1.5x)"});
  seed.print(std::cout);
}

nlohmann::ordered_json run_json(const mlperf::RunResult& r) {
  nlohmann::ordered_json j = {{"scenario", r.scenario},
                              {"target_qps", r.target_qps},
                              {"qps", r.qps},
                              {"completed_qps", r.completed_qps},
                              {"valid", r.valid},
                              {"invalid_reason", r.invalid_reason},
                              {"p50_ms", r.p50_ms},
                              {"p99_ms", r.p99_ms},
                              {"target_latency_ms", r.target_latency_ms},
                              {"min_duration_s", r.min_duration_s},
                              {"shortened", r.shortened},
                              {"mean_batch", r.mean_batch},
                              {"log_dir", r.log_dir}};
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
  for (const auto& [key, text] : r.fields) fields[key] = nlohmann::ordered_json::parse(text, nullptr, false);
  j["loadgen"] = fields;
  return j;
}

void run(BenchModelArgs& a) {
  a.o.fallback = a.minilm.fallback = parse_fallback(a.fallback);
  if (a.model == "minilm") {
    for (const char* dlrm_only : {"--pattern", "--sparsity", "--epochs", "--finetune-epochs", "--train-samples",
                                  "--test-samples", "--table-cap", "--retrain", "--p99-ms", "--server-probes",
                                  "--log-dir", "--server-max-batch", "--work-dir", "--min-duration", "--seed"})
      if (a.cmd->count(dlrm_only) > 0)
        usage_error(std::string(dlrm_only) + " is for dlrm; minilm measures the weights given by --sparse-model");
    if (a.bf16_attention && a.cmd->count("--attention") > 0 && a.attention != "bf16")
      usage_error("--bf16-attention and --attention " + a.attention + " disagree: give one of them");
    a.minilm.int8_attention = parse_attention_precision(a.bf16_attention ? "bf16" : a.attention);
    a.minilm.threads = a.o.threads;
    if (a.cmd->count("--batches") > 0) a.minilm.batches = a.o.batches;
    check_not_inside("--json", a.json, a.minilm.sparse_dir, "the pruned model (--sparse-model)");
    check_not_inside("--json", a.json, a.minilm.dense_dir, "the dense model (--dense-model)");
    check_output_file("--json", a.json);
    run_minilm_bench(a.minilm, a.json);
    return;
  }
  for (const char* minilm_only : {"--sparse-model", "--dense-model", "--seq-length", "--seconds", "--variants",
                                  "--attention", "--bf16-attention", "--tokens-per-pass"})
    if (a.cmd->count(minilm_only) > 0) usage_error(std::string(minilm_only) + " is for minilm");
  if (a.model != "dlrm") usage_error("unknown model " + in_quotes(a.model) + ": valid are dlrm and minilm");
  a.o.pattern = Pattern::parse(a.pattern);
  // An N:M pattern fixes its own sparsity, as in prune, train and distill: an explicit --sparsity
  // must agree with it, and the default 0.85 gives way to it (2:4 ran at 50% labelled 85%).
  if (a.o.pattern.is_nm())
    a.o.sparsity =
        Recipe::from_flags(a.pattern, a.cmd->count("--sparsity") > 0 ? a.o.sparsity : NAN).groups[0].target();
  if (!(a.o.sparsity > 0 && a.o.sparsity < 1)) usage_error("--sparsity must be in (0, 1), e.g. 0.85");
  // The settings, then every output place (made and checked), before the training: a run fails at
  // once or not at all, and a refused setting leaves no folder behind.
  dlrm::check_bench_options(a.o, a.work_dir);
  make_output_folder("--work-dir", a.work_dir, {dlrm::kPretrainedFile, dlrm::kDenseFile, dlrm::kSparseFile});
  make_output_folder("--log-dir", dlrm::loadgen_log_dir(a.o, a.work_dir), {"mlperf_log_summary.txt"});
  check_output_file("--json", a.json);
  // LoadGen logs every completed sample on a thread of its own, which spinning workers starve.
  if (const char* policy = std::getenv("OMP_WAIT_POLICY"); policy && strcasecmp(policy, "active") == 0)
    std::cerr << "note: OMP_WAIT_POLICY=active: spinning OpenMP workers take the cores LoadGen's own threads "
                 "need (on 2 cores Offline ran at half its rate); OMP_WAIT_POLICY=passive measures the model\n";
  const auto report = dlrm::bench_dlrm(a.work_dir, a.seed, a.o, std::cerr);
  print_table(report, a.o);
  if (a.json.empty()) return;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : report.records) {
    nlohmann::ordered_json rec = {{"variant", r.variant},
                                  {"scenario", r.scenario},
                                  {"qps", r.run ? nlohmann::ordered_json(r.run->qps) : nlohmann::ordered_json()},
                                  {"valid", r.run && r.run->valid},
                                  {"verdict", r.verdict},
                                  {"p99_ms", r.run ? nlohmann::ordered_json(r.run->p99_ms) : nlohmann::ordered_json()},
                                  {"batch", r.batch},
                                  {"accuracy", r.accuracy},
                                  {"auc", r.auc},
                                  {"sparsity", r.sparsity},
                                  {"threads", a.o.threads},
                                  {"host", bench::host_line()},
                                  {"fallback", fallback_name(a.o.fallback)},
                                  {"data", "synthetic"},
                                  {"budget",
                                   {{"pretrain_clicks", report.pretrain_clicks},
                                    {"finetune_clicks", report.finetune_clicks},
                                    {"steps", report.steps}}}};
    rec["run"] = r.run ? run_json(*r.run) : nlohmann::ordered_json();
    nlohmann::ordered_json probes = nlohmann::ordered_json::array();
    for (const auto& p : r.probes) probes.push_back(run_json(p));
    rec["probes"] = probes;
    out.push_back(rec);
  }
  write_json(a.json, out);  // a run stopped before here leaves no file
  std::cout << "wrote " << a.json << "\n";
}

void add(CLI::App& app) {
  auto a = std::make_shared<BenchModelArgs>();
  auto* cmd = app.add_subcommand(
      "bench-model", "Train, convert and measure a whole model: LibTorch FP32 dense, INT8 dense, INT8 sparse");
  a->cmd = cmd;
  cmd->add_option("model", a->model,
                  "dlrm (MLPerf shapes, synthetic data, through LoadGen) or minilm (all-MiniLM-L6-v2, pruned by "
                  "`spruce distill`)")
      ->required();
  a->minilm.dense_dir = minilm::default_model_dir();
  cmd->add_option("--sparse-model", a->minilm.sparse_dir, "minilm: the pruned model folder (`spruce distill --save`)")
      ->check(non_empty());
  cmd->add_option("--dense-model", a->minilm.dense_dir, "minilm: the dense model folder")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--seq-length", a->minilm.seq_length, "minilm: tokens per sequence")
      ->check(int_in(3, 512))
      ->capture_default_str();
  cmd->add_option("--variants", a->minilm.variants,
                  "minilm: which to run, of fp32-dense, int8-dense, fp32-sparse and int8-sparse")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--tokens-per-pass", a->minilm.tokens_per_pass,
                  "minilm: run each batch in passes of whole sequences, at most this many tokens each, so that "
                  "activations stay in cache between layers (0: the whole batch at once)")
      ->check(int_in(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--attention", a->attention,
                  "minilm: the INT8 variants' attention products: f32; bf16 (BF16-rounded inputs, FP32 sums; "
                  "AVX512_BF16); int8 (8-bit inputs and u8 softmax weights, int32 sums; AVX512_VNNI). Where the "
                  "CPU lacks the instructions, f32; the table says which kernel ran")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}))
      ->capture_default_str();
  cmd->add_flag("--bf16-attention", a->bf16_attention, "minilm: the same as --attention bf16");
  cmd->add_option("--seconds", a->minilm.min_seconds, "minilm: timing per variant and batch size, seconds")
      ->check(real_in(0.01, 3600))
      ->capture_default_str();
  cmd->add_option("--work-dir", a->work_dir, "Where trained models are cached")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_flag("--retrain", a->o.retrain, "Train again even when the cache has the models");
  cmd->add_option("--train-samples", a->o.train_samples, "Synthetic training samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--test-samples", a->o.test_samples, "Synthetic test samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "Dense training epochs")->check(int_in(1, 1000))->capture_default_str();
  cmd->add_option("--finetune-epochs", a->o.finetune_epochs,
                  "Dense and sparse both continue from the pre-trained model on this many epochs of the same "
                  "fresh clicks (the sparse one prunes meanwhile)")
      ->check(int_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--table-cap", a->o.table_cap, "Rows per embedding table at most")
      ->check(int_in(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--pattern", a->pattern, "Sparsity pattern of the MLPs")->capture_default_str();
  cmd->add_option("--sparsity", a->o.sparsity,
                  "Fraction of zeros in the pruned MLP layers (an N:M pattern fixes its own: 2:4 is 0.5)")
      ->check(fraction())
      ->capture_default_str();
  cmd->add_option("--threads", a->o.threads, "Threads for every variant")->check(thread_count())->capture_default_str();
  add_fallback_option(cmd, a->fallback);
  cmd->add_option("--batches", a->o.batches, "Batch sizes: dlrm's Offline batches to try; minilm's (default 1 8 32)")
      ->check(int_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--p99-ms", a->o.p99_bound_ms, "Server p99 latency bound; 0: LoadGen's for DLRM v2 (60 ms)")
      ->check(real_in(0, 1e6))
      ->capture_default_str();
  cmd->add_option("--min-duration", a->o.min_duration_s,
                  "LoadGen's minimum duration of each run, seconds (LoadGen's own: 600; shorter runs are marked)")
      ->check(real_in(0.1, 1e5))
      ->capture_default_str();
  cmd->add_option("--server-probes", a->o.server_probes, "LoadGen Server runs in the search for the highest VALID rate")
      ->check(int_in(1, 100))
      ->capture_default_str();
  cmd->add_option("--log-dir", a->o.log_dir, "LoadGen's summary and detail logs (default: <work-dir>/loadgen)")
      ->check(non_empty());
  cmd->add_option("--server-max-batch", a->o.server_max_batch, "Largest dynamic batch in the Server scenario")
      ->check(int_in(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the data and training")
      ->check(uint_in(0, UINT32_MAX))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "Write one record per variant and scenario, with LoadGen's fields")
      ->check(non_empty());
  cmd->callback([a] { run(*a); });
}

const Command reg{"bench-model", add};

}  // namespace
}  // namespace spruce::cli
