// IDX files (the MNIST family's format), plain or gzip-compressed, and Fashion-MNIST's layout.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spruce {

// An IDX array of unsigned bytes (type code 0x08), the only type the MNIST family uses.
struct IdxArray {
  std::vector<int64_t> shape;   // from the header, outermost first
  std::vector<uint8_t> values;  // row-major, product(shape) bytes
};

// Reads `path`, gunzipping when it starts with the gzip magic. Throws spruce::Error (data) naming
// the file and the problem: missing file, bad magic, unsupported type, short or long payload.
IdxArray read_idx(const std::string& path);
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& source);

// Fashion-MNIST as Debian's dataset-fashion-mnist installs it.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

enum class Split { Train, Test };
struct LabeledImages {
  IdxArray images;  // [N][28][28]
  IdxArray labels;  // [N], 0..9
};
// Reads <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz. A missing file is an error that
// names the package to install. N must be above 0, images and labels must agree on it, and labels
// must be < 10.
LabeledImages load_fashion_mnist(const std::string& dir, Split split);
// Throws spruce::Error (data), as load_fashion_mnist does, unless `dir` holds all four files: for
// commands that check their inputs before they print or train anything.
void require_fashion_mnist(const std::string& dir);

}  // namespace spruce
