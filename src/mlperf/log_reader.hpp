// Reads LoadGen's verdict and figures from its detail log (":::MLLOG {json}" lines).
#pragma once
#include <string>

#include "spruce/mlperf.hpp"

namespace spruce::mlperf {

// Fills `result`'s verdict, rates, latencies and `fields` from the detail log at `path`. A log
// without a result_validity record (LoadGen stopped on an error) is a data error naming the file.
void read_detail_log(const std::string& path, RunResult& result);

}  // namespace spruce::mlperf
