#include "bench_minilm.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "spruce/bench.hpp"
#include "spruce/file.hpp"
#include "table.hpp"

namespace spruce::cli {

void run_minilm_bench(const minilm::MinilmBenchOptions& o, const std::string& json) {
  const auto records = minilm::bench_minilm(o, std::cerr);
  const char* variants[] = {"fp32-dense", "int8-dense", "fp32-sparse", "int8-sparse"};
  auto find = [&](const std::string& v, int64_t batch) -> const minilm::MinilmBenchRecord* {
    for (const auto& r : records)
      if (r.variant == v && (batch == 0 || r.batch == batch)) return &r;
    return nullptr;
  };
  Table t({"", "Dense (FP32, LibTorch)", "Dense (INT8, oneDNN)", "Sparse (FP32, spruce)", "Sparse (INT8, spruce)"});
  std::vector<std::string> sparsity{"Linear sparsity"}, teacher{"Cosine to dense FP32 (held-out)"},
      own{"Cosine to own FP32 weights"};
  for (const char* v : variants) {
    const auto* r = find(v, 0);
    sparsity.push_back(percent(r->sparsity, 1));
    teacher.push_back(fixed(r->cosine_to_teacher, 4));
    own.push_back(fixed(r->cosine_to_own_fp32, 4));
  }
  t.add_row(sparsity);
  t.add_row(teacher);
  t.add_row(own);
  for (int64_t batch : o.batches) {
    std::vector<std::string> speed{"batch " + std::to_string(batch) + ": seq/s (vs INT8 dense)"},
        latency{"batch " + std::to_string(batch) + ": p50 / p99 ms"},
        share{"batch " + std::to_string(batch) + ": time in Linear"};
    const auto* int8 = find("int8-dense", batch);
    for (const char* v : variants) {
      const auto* r = find(v, batch);
      speed.push_back(fixed(r->sequences_per_second, 1) + " (" +
                      fixed(r->sequences_per_second / int8->sequences_per_second, 2) + "x)");
      latency.push_back(fixed(r->p50_ms, 1) + " / " + fixed(r->p99_ms, 1));
      share.push_back(percent(r->linear_share, 0));
    }
    t.add_row(speed);
    t.add_row(latency);
    t.add_row(share);
  }
  std::cout << "\nall-MiniLM-L6-v2, " << o.seq_length << " tokens per sequence (no padding), " << o.threads
            << " threads; host " << bench::host_line() << "\nsparse weights: " << o.sparse_dir << "\n\n";
  t.print(std::cout);
  std::cout << "\nkernels:";
  for (const char* v : variants) std::cout << "\n  " << v << ": " << find(v, 0)->kernels;
  std::cout << "\n";
  if (json.empty()) return;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : records)
    out.push_back(nlohmann::ordered_json{{"model", "all-MiniLM-L6-v2"},
                                         {"variant", r.variant},
                                         {"batch", r.batch},
                                         {"seq_length", r.seq_length},
                                         {"sequences_per_second", r.sequences_per_second},
                                         {"p50_ms", r.p50_ms},
                                         {"p99_ms", r.p99_ms},
                                         {"iterations", r.iterations},
                                         {"linear_share", r.linear_share},
                                         {"sparsity", r.sparsity},
                                         {"cosine_to_teacher", r.cosine_to_teacher},
                                         {"cosine_to_own_fp32", r.cosine_to_own_fp32},
                                         {"kernels", r.kernels},
                                         {"runs", r.runs},
                                         {"threads", o.threads},
                                         {"host", bench::host_line()},
                                         {"sparse_model", o.sparse_dir}});
  write_file_atomic(json, out.dump(2) + "\n");
  std::cout << "wrote " << json << "\n";
}

}  // namespace spruce::cli
