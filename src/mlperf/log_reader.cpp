#include "mlperf/log_reader.hpp"

#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"

namespace spruce::mlperf {

void read_detail_log(const std::string& path, RunResult& r) {
  std::ifstream in(path);
  if (!in) data_error("LoadGen wrote no detail log at " + in_quotes(path));
  static const std::string marker = ":::MLLOG ";
  std::map<std::string, nlohmann::json> values;
  std::string first_error;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(marker, 0) != 0) continue;
    const auto record = nlohmann::json::parse(line.substr(marker.size()), nullptr, false);
    if (record.is_discarded() || !record.contains("key") || !record["key"].is_string()) continue;
    const std::string key = record["key"];
    const nlohmann::json value = record.value("value", nlohmann::json());
    if (key.rfind("error_", 0) == 0 && first_error.empty()) first_error = key + ": " + value.dump();
    values[key] = value;
  }
  // LoadGen writes its logs without reporting a failed write: a full disk shows only as a short log.
  struct statvfs fs {};
  if (!values.count("result_validity") && ::statvfs(path.c_str(), &fs) == 0 &&
      double(fs.f_bavail) * double(fs.f_frsize) < 1 << 20)
    data_error("LoadGen could not write its logs in " + in_quotes(std::filesystem::path(path).parent_path().string()) +
               ": the file system is full (under 1 MiB free); free some space or give another --log-dir");
  if (!values.count("result_validity"))
    data_error("LoadGen's detail log " + in_quotes(path) + " has no result" +
               (first_error.empty() ? "" : " (" + first_error + ")"));

  auto number = [&](const std::string& key) {
    const auto it = values.find(key);
    return it != values.end() && it->second.is_number() ? it->second.get<double>() : 0.0;
  };
  auto flag = [&](const std::string& key, bool otherwise) {
    const auto it = values.find(key);
    return it != values.end() && it->second.is_boolean() ? it->second.get<bool>() : otherwise;
  };
  auto text = [&](const std::string& key) {
    const auto it = values.find(key);
    return it != values.end() && it->second.is_string() ? it->second.get<std::string>() : std::string();
  };
  r.valid = text("result_validity") == "VALID";
  r.invalid_reason = text("result_invalid_reason");
  while (!r.invalid_reason.empty() && r.invalid_reason.back() == ' ') r.invalid_reason.pop_back();
  r.min_duration_met = flag("result_min_duration_met", false);
  r.min_queries_met = flag("result_min_queries_met", false);
  r.early_stopping_met = flag("early_stopping_met", false);
  r.perf_constraints_met = flag("result_perf_constraints_met", true);
  if (!r.early_stopping_met && r.invalid_reason.empty()) r.invalid_reason = text("early_stopping_result");
  r.query_count = int64_t(number("result_query_count"));
  r.sample_count = int64_t(number("effective_min_sample_count"));
  if (r.scenario == "Server") {
    r.qps = number("result_scheduled_samples_per_sec");
    r.completed_qps = number("result_completed_samples_per_sec");
  } else {
    r.qps = r.completed_qps = number("result_samples_per_second");
  }
  r.p50_ms = number("result_50.00_percentile_latency_ns") / 1e6;
  r.p99_ms = number("result_99.00_percentile_latency_ns") / 1e6;
  r.max_ms = number("result_max_latency_ns") / 1e6;
  r.mean_ms = number("result_mean_latency_ns") / 1e6;
  for (const auto& [key, value] : values)
    if (key.rfind("result_", 0) == 0 || key.rfind("effective_", 0) == 0 || key.rfind("early_stopping", 0) == 0 ||
        key == "loadgen_version")
      r.fields[key] = value.dump();
}

}  // namespace spruce::mlperf
