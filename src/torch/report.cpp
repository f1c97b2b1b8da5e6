#include <algorithm>
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
  // The name column fits the longest name ("encoder.layer.5.attention.self.query" as well as "fc1").
  int name_width = 16;
  for (const auto& l : report.layers)
    name_width = std::max(name_width, static_cast<int>(std::min<size_t>(l.name.size(), 100)));
  std::ostringstream out;
  char line[320];
  std::snprintf(line, sizeof line, "%-*s %-6s %-10s %-22s %9s %9s\n", name_width, "layer", "op", "pattern", "shape",
                "sparsity", "target");
  out << line;
  for (const auto& l : report.layers) {
    std::string shape = "[";
    for (size_t i = 0; i < l.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(l.shape[i]);
    shape += "]";
    std::snprintf(line, sizeof line, "%-*s %-6s %-10s %-22s %8.2f%% %8.2f%%\n", name_width, l.name.c_str(),
                  l.op_type.c_str(), l.pattern.c_str(), shape.c_str(), 100 * l.sparsity(), 100 * l.target);
    out << line;
  }
  std::snprintf(line, sizeof line, "%-*s %8.2f%%   (%lld of %lld weights are zero, step %lld)\n", name_width + 40,
                "total", 100 * report.sparsity(), (long long)report.zeros(), (long long)report.elements(),
                (long long)report.step);
  out << line;
  return out.str();
}

}  // namespace spruce::torch
