// Aligned text tables in the form of the seed's (Markdown pipes), for the terminal and docs.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace spruce::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add_row(std::vector<std::string> row);  // control characters (in names from files) are escaped
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Formatting helpers shared by the commands.
std::string fixed(double v, int decimals);
std::string percent(double fraction, int decimals = 1);       // 0.9 -> "90.0%"
std::string shape_string(const std::vector<int64_t>& shape);  // [768, 3072]

}  // namespace spruce::cli
