// IDX parsing, Fashion-MNIST errors, and a short training smoke test on a slice of the real data.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fashion_mnist/data.hpp"
#include "fashion_mnist/trainer.hpp"
#include "spruce/error.hpp"
#include "spruce/idx.hpp"

namespace spruce::test {
namespace {

std::vector<uint8_t> idx_bytes(std::vector<uint32_t> shape, size_t payload, uint8_t type = 0x08) {
  std::vector<uint8_t> b{0, 0, type, uint8_t(shape.size())};
  for (uint32_t d : shape)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(uint8_t(d >> shift));
  for (size_t i = 0; i < payload; ++i) b.push_back(uint8_t(i));
  return b;
}

std::string data_error_of(const std::vector<uint8_t>& bytes) {
  try {
    parse_idx(bytes, "x.idx");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    return e.what();
  }
  return "";
}

TEST(Idx, ParsesShapeAndValues) {
  IdxArray a = parse_idx(idx_bytes({2, 3}, 6), "x.idx");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.values, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5}));
}

TEST(Idx, RejectsMalformedFilesWithOneLineErrors) {
  EXPECT_NE(data_error_of({1, 2, 3}).find("not an IDX file"), std::string::npos);
  EXPECT_NE(data_error_of(idx_bytes({4}, 4, 0x0D)).find("type code 13"), std::string::npos);
  EXPECT_NE(data_error_of(idx_bytes({2, 3}, 5)).find("holds 5 bytes, its header says 6"), std::string::npos);
  EXPECT_NE(data_error_of({0, 0, 8, 3, 0, 0}).find("truncated"), std::string::npos);
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// A gzip bomb: a header of one 28x28 image, then 256 MiB of zeros, in a file of about 256 KiB.
// Inflating stops one byte past the declared 784: memory stays bounded and the refusal is at once
// (the whole stream used to be inflated first, 4 GB of memory for a 2 MB file).
TEST(Idx, StopsInflatingPastTheDeclaredSize) {
  // Per process: ctest runs this suite under every ISA cap at once, all in one TempDir.
  const std::string path = ::testing::TempDir() + "/bomb-" + std::to_string(getpid()) + "-idx3-ubyte.gz";
  gzFile f = gzopen(path.c_str(), "wb1");
  ASSERT_NE(f, nullptr);
  const std::vector<uint8_t> header = idx_bytes({1, 28, 28}, 0);
  gzwrite(f, header.data(), unsigned(header.size()));
  const std::vector<uint8_t> zeros(1 << 20, 0);
  for (int i = 0; i < 256; ++i) gzwrite(f, zeros.data(), unsigned(zeros.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
  const long before = peak_rss_kib();
  try {
    read_idx(path);
    ADD_FAILURE() << "a gzip bomb was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IDX payload holds more than the 784 bytes its header says"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(peak_rss_kib() - before, 16 << 10) << "KiB more at the peak";
  std::filesystem::remove(path);
}

// The bytes of `payload` as one gzip member.
std::string gzip_member(const std::vector<uint8_t>& payload) {
  const std::string path = ::testing::TempDir() + "/member-" + std::to_string(getpid()) + ".gz";
  gzFile f = gzopen(path.c_str(), "wb6");
  EXPECT_NE(f, nullptr);
  gzwrite(f, payload.data(), unsigned(payload.size()));
  EXPECT_EQ(gzclose(f), Z_OK);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  return bytes;
}

// A gzip IDX file is read whole or refused: extra members are gzip's own concatenation, anything
// else after the stream, or a stream cut short, is a damaged file.
TEST(Idx, GzipStreamsMustEndWithTheFile) {
  const std::string path = ::testing::TempDir() + "/stream-" + std::to_string(getpid()) + "-idx1-ubyte.gz";
  const std::vector<uint8_t> idx = idx_bytes({300}, 300);
  auto read_as = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    try {
      return std::to_string(read_idx(path).values.size());
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Data);
      return std::string(e.what());
    }
  };
  const std::string whole = gzip_member(idx);
  EXPECT_EQ(read_as(whole), "300");
  const std::vector<uint8_t> head(idx.begin(), idx.begin() + 100), tail(idx.begin() + 100, idx.end());
  EXPECT_EQ(read_as(gzip_member(head) + gzip_member(tail)), "300");
  EXPECT_EQ(read_as(whole + "trailing"),
            path + ": 8 bytes that are not gzip follow the compressed data; reinstall the file");
  EXPECT_EQ(read_as(whole.substr(0, whole.size() - 3)), path + ": the gzip stream is cut short; reinstall the file");
  std::string damaged = whole;
  damaged[damaged.size() - 8] ^= 1;  // the CRC-32 of the trailer
  EXPECT_EQ(read_as(damaged), path + ": corrupt gzip stream (incorrect data check); reinstall the file");
  std::filesystem::remove(path);
}

TEST(FashionMnist, MissingFilesNameThePackage) {
  try {
    load_fashion_mnist("/nonexistent", Split::Train);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dataset-fashion-mnist"), std::string::npos) << e.what();
  }
}

// A split of 0 images trained to NaN with exit 0, and failed evaluation with a oneDNN error.
TEST(FashionMnist, EmptySplitsAreRefused) {
  const std::string dir = ::testing::TempDir() + "/empty-fashion-mnist-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  for (const char* split : {"train", "t10k"}) {
    const std::vector<uint8_t> images = idx_bytes({0, 28, 28}, 0), labels = idx_bytes({0}, 0);
    std::ofstream(dir + "/" + split + "-images-idx3-ubyte.gz", std::ios::binary)
        .write(reinterpret_cast<const char*>(images.data()), std::streamsize(images.size()));
    std::ofstream(dir + "/" + split + "-labels-idx1-ubyte.gz", std::ios::binary)
        .write(reinterpret_cast<const char*>(labels.data()), std::streamsize(labels.size()));
  }
  try {
    load_fashion_mnist(dir, Split::Test);
    ADD_FAILURE() << "an empty split was loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    EXPECT_NE(std::string(e.what()).find(dir + "/t10k-images-idx3-ubyte.gz holds 0 images"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

// Labels of shape [N][1] were reported as "expected N labels", although N were there.
TEST(FashionMnist, LabelsMustBeOneDimensional) {
  const std::string dir = ::testing::TempDir() + "/rank2-fashion-mnist-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const auto put = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  };
  put("t10k-images-idx3-ubyte.gz", idx_bytes({4, 28, 28}, 4 * 28 * 28));
  put("t10k-labels-idx1-ubyte.gz", idx_bytes({4, 1}, 4));
  const auto refused = [&](const std::string& needle) {
    try {
      load_fashion_mnist(dir, Split::Test);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused("labels must be one-dimensional, one per image, not of rank 2");
  put("t10k-labels-idx1-ubyte.gz", idx_bytes({3}, 3));
  refused("expected 4 labels, one per image, not 3");
  std::filesystem::remove_all(dir);
}

bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
}

TEST(FashionMnist, LoadsNormalizedTensorsAndShuffledBatches) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh)";
  auto set = spruce::fashion_mnist::load_fashion_mnist_tensors(kFashionMnistDir, Split::Test, 1000);
  ASSERT_EQ(set.size(), 1000);
  EXPECT_EQ(set.images.sizes(), (std::vector<int64_t>{1000, 1, 28, 28}));
  EXPECT_NEAR(set.images.mean().item<double>(), 0.0, 0.15);
  EXPECT_EQ(set.labels.max().item<int64_t>(), 9);
  ::torch::manual_seed(3);
  auto loader = spruce::fashion_mnist::make_train_loader(set, 300);
  int64_t batches = 0, seen = 0, label_sum = 0;
  for (auto& batch : *loader) {
    ++batches;
    seen += batch.target.size(0);
    label_sum += batch.target.sum().item<int64_t>();
    if (batches == 1) {
      EXPECT_FALSE(::torch::equal(batch.target, set.labels.narrow(0, 0, 300))) << "not shuffled";
    }
  }
  EXPECT_EQ(batches, 4);  // 300, 300, 300, 100
  EXPECT_EQ(seen, 1000);
  EXPECT_EQ(label_sum, set.labels.sum().item<int64_t>());  // every example once
}

TEST(FashionMnist, ShortSparseTrainingReachesSparsityAndBeatsChance) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh)";
  spruce::fashion_mnist::TrainOptions o;
  o.model = "mlp";
  o.pattern = Pattern::block(4, 1);
  o.sparsity = 0.8;
  o.epochs = 2;
  o.batch_size = 64;
  o.train_limit = 2048;
  o.test_limit = 1000;
  o.progress_bar = false;
  std::ostringstream log;
  const auto r = spruce::fashion_mnist::train(o, log);
  EXPECT_NEAR(r.sparsity, 0.8, 0.005) << log.str();
  EXPECT_GT(r.test_accuracy, 0.6) << "chance is 0.1\n" << log.str();
  ASSERT_EQ(r.report.layers.size(), 2u);  // fc1, fc2; the head stays dense
}

}  // namespace
}  // namespace spruce::test
