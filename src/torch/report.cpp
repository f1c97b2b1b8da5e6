#include <cstdio>
#include <sstream>

#include "spruce/torch/pruner.hpp"

namespace spruce::torch {

int64_t SparsityReport::zeros() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.zeros;
  return n;
}

int64_t SparsityReport::elements() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.elements;
  return n;
}

double SparsityReport::sparsity() const { return elements() ? double(zeros()) / double(elements()) : 0.0; }

std::string format_report(const SparsityReport& report) {
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-16s %-6s %-10s %-22s %9s %9s\n", "layer", "op", "pattern", "shape", "sparsity",
                "target");
  out << line;
  for (const auto& l : report.layers) {
    std::string shape = "[";
    for (size_t i = 0; i < l.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(l.shape[i]);
    shape += "]";
    std::snprintf(line, sizeof line, "%-16s %-6s %-10s %-22s %8.2f%% %8.2f%%\n", l.name.c_str(), l.op_type.c_str(),
                  l.pattern.c_str(), shape.c_str(), 100 * l.sparsity(), 100 * l.target);
    out << line;
  }
  std::snprintf(line, sizeof line, "%-56s %8.2f%%   (%lld of %lld weights are zero, step %lld)\n", "total",
                100 * report.sparsity(), (long long)report.zeros(), (long long)report.elements(),
                (long long)report.step);
  out << line;
  return out.str();
}

}  // namespace spruce::torch
