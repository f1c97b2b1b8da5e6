// spruce bench-model dlrm: whole-model Offline and Server throughput through MLPerf LoadGen, in the
// seed's table form, with the seed's own figures beside it.
// Its work, in spruce-torch; the flags and the checks that need no LibTorch are in cmd_bench_model.cpp.
#include <strings.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_minilm.hpp"
#include "cmd_bench_model.hpp"
#include "dlrm/dlrm_bench.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "spruce/attention.hpp"
#include "spruce/bench.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/mlperf.hpp"
#include "spruce/recipe.hpp"
#include "spruce/safetensors.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

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

// 15, 0.1, 0.0001: as short as the value allows (fixed(v, 0) showed 0.0001 ms as 0 ms).
std::string brief(double v) {
  std::ostringstream out;
  out << std::setprecision(6) << v;
  return out.str();
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
    auc.push_back(std::isnan(a->auc) ? "n/a (the test clicks are of one class)" : fixed(a->auc, 4));
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
            << brief(offline.target_latency_ms) << " ms"
            << (offline.shortened ? ", runs SHORTENED to " + brief(offline.min_duration_s) + " s (LoadGen's: 600 s)"
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

}  // namespace

void run_bench_model(BenchModelArgs& a) {
  check_bench_model_args(a);
  if (a.model == "minilm") {
    run_minilm_bench(a.minilm, a.json);
    return;
  }
  // The settings, then every output place (made and checked), before the training: a run fails at
  // once or not at all, and a refused setting leaves no folder behind.
  dlrm::check_bench_options(a.o, a.work_dir);
  check_not_output("--json", a.json, a.work_dir, "--work-dir",
                   {dlrm::kPretrainedFile, dlrm::kDenseFile, dlrm::kSparseFile});
  check_not_within("--json", a.json, dlrm::loadgen_log_dir(a.o, a.work_dir), "LoadGen's log folder (--log-dir)");
  make_output_folder("--work-dir", a.work_dir, {dlrm::kPretrainedFile, dlrm::kDenseFile, dlrm::kSparseFile});
  make_output_folder("--log-dir", dlrm::loadgen_log_dir(a.o, a.work_dir), {"mlperf_log_summary.txt"});
  check_output_file("--json", a.json, "JSON");
  lock_folder("--work-dir", a.work_dir);  // two runs trained into the same cached models; after every check
  // Two runs logging into one folder read each other's LoadGen logs into their reports.
  lock_folder("--log-dir", dlrm::loadgen_log_dir(a.o, a.work_dir));
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

}  // namespace spruce::cli
