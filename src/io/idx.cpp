#include "spruce/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>

#include "spruce/error.hpp"
#include "spruce/file.hpp"

namespace spruce {
namespace {

uint32_t big_endian_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

// The bytes an IDX file of this header holds in all (header and payload), once `header` holds
// the rank and every dimension; SIZE_MAX where it does not yet, or the product overflows.
size_t idx_size(const std::vector<uint8_t>& header) {
  if (header.size() < 4) return SIZE_MAX;
  const size_t rank = header[3];
  if (header.size() < 4 + 4 * rank) return SIZE_MAX;
  size_t count = 1;
  for (size_t i = 0; i < rank; ++i)
    if (__builtin_mul_overflow(count, size_t(big_endian_u32(&header[4 + 4 * i])), &count)) return SIZE_MAX;
  return count > SIZE_MAX - 4 - 4 * rank ? SIZE_MAX : 4 + 4 * rank + count;
}

// The file's bytes, gunzipped when it starts with the gzip magic. Inflating stops one byte past
// the size the header declares, so a gzip bomb (a small file that inflates to gigabytes) is
// refused at once, in bounded memory. Concatenated gzip members are read as one stream (gzip's
// rule); any other bytes after the last member are refused, as is a stream cut short.
std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  const std::string file = read_file(path);  // requires a regular file
  const auto* in = reinterpret_cast<const uint8_t*>(file.data());
  if (file.size() < 2 || in[0] != 0x1f || in[1] != 0x8b) return {in, in + file.size()};
  if (file.size() > UINT32_MAX) data_error(path + ": a gzip file over 4 GiB is not an IDX data set");
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) data_error(path + ": cannot start inflating (out of memory)");
  z.next_in = const_cast<uint8_t*>(in);
  z.avail_in = uInt(file.size());
  std::vector<uint8_t> bytes;
  size_t limit = 4;  // grows to the header's rank, then to the declared size plus one byte
  std::string problem;
  while (problem.empty() && bytes.size() < limit) {
    const size_t had = bytes.size();
    bytes.resize(std::min(limit, had + (size_t(1) << 16)));
    z.next_out = bytes.data() + had;
    z.avail_out = uInt(bytes.size() - had);
    const int status = inflate(&z, Z_NO_FLUSH);
    bytes.resize(bytes.size() - z.avail_out);
    if (status == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
        problem = std::to_string(z.avail_in) + " bytes that are not gzip follow the compressed data";
        break;
      }
      inflateReset(&z);  // the next member
    } else if (status == Z_BUF_ERROR && z.avail_in == 0) {
      problem = "the gzip stream is cut short";
    } else if (status != Z_OK && status != Z_BUF_ERROR) {
      problem = "corrupt gzip stream (" + std::string(z.msg ? z.msg : zError(status)) + ")";
    }
    if (bytes.size() == limit && limit == 4 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0x08)
      limit = 4 + 4 * size_t(bytes[3]);
    else if (bytes.size() == limit && limit > 4 && limit == 4 + 4 * size_t(bytes[3]))
      limit = idx_size(bytes) == SIZE_MAX ? limit : idx_size(bytes) + 1;
  }
  inflateEnd(&z);
  if (!problem.empty()) data_error(path + ": " + problem + "; reinstall the file");
  const size_t declared = idx_size(bytes);
  if (declared != SIZE_MAX && bytes.size() > declared)
    data_error(path + ": IDX payload holds more than the " + std::to_string(declared - 4 - 4 * size_t(bytes[3])) +
               " bytes its header says");
  return bytes;
}

}  // namespace

IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& source) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    data_error(source + ": not an IDX file (its first two bytes must be zero)");
  if (bytes[2] != 0x08)
    data_error(source + ": IDX type code " + std::to_string(bytes[2]) +
               " is not supported; only unsigned bytes (type code 8) are");
  const size_t rank = bytes[3];
  if (rank == 0 || bytes.size() < 4 + 4 * rank) data_error(source + ": IDX header is truncated");
  const size_t total = idx_size(bytes);
  if (total == SIZE_MAX) data_error(source + ": IDX header declares more bytes than memory can hold");
  IdxArray a;
  for (size_t i = 0; i < rank; ++i) a.shape.push_back(big_endian_u32(&bytes[4 + 4 * i]));
  const size_t count = total - 4 - 4 * rank;
  const size_t payload = bytes.size() - 4 - 4 * rank;
  if (payload != count)
    data_error(source + ": IDX payload holds " + std::to_string(payload) + " bytes, its header says " +
               std::to_string(count));
  a.values.assign(bytes.begin() + std::ptrdiff_t(4 + 4 * rank), bytes.end());
  return a;
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_maybe_gzip(path), path); }

namespace {
struct SplitFiles {
  std::string images, labels;
};
// <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, each checked to exist.
SplitFiles split_files(const std::string& dir, Split split) {
  const std::string prefix = dir + (split == Split::Train ? "/train" : "/t10k");
  SplitFiles f{prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz"};
  for (const std::string* p : {&f.images, &f.labels})
    if (!std::filesystem::exists(*p))  // present but not a file: read_idx says what it is
      data_error("Fashion-MNIST is missing: " + *p +
                 " not found; install the Debian package dataset-fashion-mnist (scripts/install-deps.sh)"
                 " or point --data at a folder holding the four IDX .gz files");
  return f;
}
}  // namespace

void require_fashion_mnist(const std::string& dir) {
  split_files(dir, Split::Train);
  split_files(dir, Split::Test);
}

LabeledImages load_fashion_mnist(const std::string& dir, Split split) {
  const auto [images_path, labels_path] = split_files(dir, split);
  LabeledImages set{read_idx(images_path), read_idx(labels_path)};
  if (set.images.shape.size() != 3 || set.images.shape[1] != 28 || set.images.shape[2] != 28)
    data_error(images_path + ": expected images of shape [N][28][28]");
  // Nothing to train on or to score: the results would be NaN, or a oneDNN error naming nothing.
  if (set.images.shape[0] == 0) data_error(images_path + " holds 0 images; reinstall the file or fix --data");
  if (set.labels.shape.size() != 1)
    data_error(labels_path + ": labels must be one-dimensional, one per image, not of rank " +
               std::to_string(set.labels.shape.size()));
  if (set.labels.shape[0] != set.images.shape[0])
    data_error(labels_path + ": expected " + std::to_string(set.images.shape[0]) + " labels, one per image, not " +
               std::to_string(set.labels.shape[0]));
  for (uint8_t label : set.labels.values)
    if (label >= 10) data_error(labels_path + ": label " + std::to_string(label) + " is outside 0..9");
  return set;
}

}  // namespace spruce
