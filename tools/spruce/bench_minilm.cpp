#include "bench_minilm.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "json_output.hpp"
#include "spruce/bench.hpp"
#include "spruce/file.hpp"
#include "table.hpp"

namespace spruce::cli {

namespace {
nlohmann::ordered_json stage_json(const std::array<double, minilm::kStageCount>& ms) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (int s = 0; s < minilm::kStageCount; ++s) j[minilm::stage_name(static_cast<minilm::Stage>(s))] = ms[s];
  return j;
}
}  // namespace

void run_minilm_bench(const minilm::MinilmBenchOptions& o, const std::string& json) {
  const auto records = minilm::bench_minilm(o, std::cerr);
  const auto& variants = o.variants;
  auto find = [&](const std::string& v, int64_t batch) -> const minilm::MinilmBenchRecord* {
    for (const auto& r : records)
      if (r.variant == v && (batch == 0 || r.batch == batch)) return &r;
    return nullptr;
  };
  const std::map<std::string, std::string> headers{{"fp32-dense", "Dense (FP32, LibTorch)"},
                                                   {"int8-dense", "Dense (INT8, oneDNN)"},
                                                   {"fp32-sparse", "Sparse (FP32, spruce)"},
                                                   {"int8-sparse", "Sparse (INT8, spruce)"}};
  std::vector<std::string> header{""};
  for (const auto& v : variants) header.push_back(headers.at(v));
  Table t(header);
  std::vector<std::string> sparsity{"Linear sparsity"}, teacher{"Cosine to dense FP32 (held-out)"},
      own{"Cosine to own FP32 weights"};
  for (const auto& v : variants) {
    const auto* r = find(v, 0);
    sparsity.push_back(percent(r->sparsity, 1));
    teacher.push_back(fixed(r->cosine_to_teacher, 4));
    own.push_back(fixed(r->cosine_to_own_fp32, 4));
  }
  t.add_row(sparsity);
  t.add_row(teacher);
  t.add_row(own);
  for (int64_t batch : o.batches) {
    const auto* int8 = find("int8-dense", batch);  // the ratios' base, when it ran
    std::vector<std::string> speed{"batch " + std::to_string(batch) + (int8 ? ": seq/s (vs INT8 dense)" : ": seq/s")},
        latency{"batch " + std::to_string(batch) + ": p50 / p99 ms"},
        share{"batch " + std::to_string(batch) + ": time in Linear"};
    for (const auto& v : variants) {
      const auto* r = find(v, batch);
      speed.push_back(fixed(r->sequences_per_second, 1) +
                      (int8 ? " (" + fixed(r->sequences_per_second / int8->sequences_per_second, 2) + "x)" : ""));
      latency.push_back(fixed(r->p50_ms, 1) + " / " + fixed(r->p99_ms, 1));
      share.push_back(percent(r->linear_share, 0));
    }
    t.add_row(speed);
    t.add_row(latency);
    t.add_row(share);
  }
  const bool side_by_side = o.parallel_passes && o.threads > 1 && o.tokens_per_pass > 0;
  std::cout << "\n"
            << minilm::model_label(o.dense_dir) << ", " << o.seq_length << " tokens per sequence (no padding), "
            << (o.tokens_per_pass > 0 ? "in passes of at most " + std::to_string(o.tokens_per_pass) + " tokens" +
                                            (side_by_side ? " side by side, one thread each, " : " one at a time, ")
                                      : std::string("whole batches, "))
            << o.threads << " threads; host " << bench::host_line() << "\nsparse weights: " << o.sparse_dir << "\n\n";
  t.print(std::cout);
  const int64_t largest = *std::max_element(o.batches.begin(), o.batches.end());
  std::cout << "\nwhere one batch of " << largest << " x " << o.seq_length
            << " spends its time, ms (share), mean of 3 batches"
            << (side_by_side && largest > 1
                    ? " (on the first thread: each thread runs its own passes, so its stages add up to the batch)"
                    : "")
            << ":\n\n";
  Table stages(header);
  for (int s = 0; s < minilm::kStageCount; ++s) {
    std::vector<std::string> row{minilm::stage_name(static_cast<minilm::Stage>(s))};
    for (const auto& v : variants) {
      const auto& ms = find(v, largest)->stage_ms;
      const double total = std::accumulate(ms.begin(), ms.end(), 0.0);
      row.push_back(fixed(ms[s], 1) + " (" + percent(total > 0 ? ms[s] / total : 0.0, 0) + ")");
    }
    stages.add_row(row);
  }
  stages.print(std::cout);
  std::cout << "\nkernels:";
  for (const auto& v : variants)
    std::cout << "\n  " << v << ": " << find(v, 0)->kernels << "; attention " << find(v, 0)->attention;
  std::cout << "\n";
  if (json.empty()) return;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : records)
    out.push_back(nlohmann::ordered_json{{"model", minilm::model_label(o.dense_dir)},
                                         {"variant", r.variant},
                                         {"batch", r.batch},
                                         {"seq_length", r.seq_length},
                                         {"sequences_per_second", r.sequences_per_second},
                                         {"p50_ms", r.p50_ms},
                                         {"p99_ms", r.p99_ms},
                                         {"iterations", r.iterations},
                                         {"linear_share", r.linear_share},
                                         {"stage_ms", stage_json(r.stage_ms)},
                                         {"sparsity", r.sparsity},
                                         {"cosine_to_teacher", r.cosine_to_teacher},
                                         {"cosine_to_own_fp32", r.cosine_to_own_fp32},
                                         {"kernels", r.kernels},
                                         {"attention", r.attention},
                                         {"runs", r.runs},
                                         {"threads", o.threads},
                                         {"tokens_per_pass", o.tokens_per_pass},
                                         {"parallel_passes", o.parallel_passes},
                                         {"fallback", fallback_name(o.fallback)},
                                         {"host", bench::host_line()},
                                         {"sparse_model", o.sparse_dir}});
  write_json(json, out);
  std::cout << "wrote " << json << "\n";
}

}  // namespace spruce::cli
