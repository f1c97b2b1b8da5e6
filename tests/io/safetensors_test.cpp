#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"

using namespace spruce;
namespace fs = std::filesystem;

namespace {

SafetensorsFile sample() {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"note", "kept"}};
  const float w[6] = {1.f, -2.f, 0.f, 3.5f, -0.f, 7.f};
  f.tensors.push_back(Tensor::from_f32("w", {2, 3}, w));
  Tensor h{"h", DType::F16, {2}, {0x00, 0x3c, 0x00, 0xc0}};  // 1.0, -2.0
  Tensor b{"b", DType::BF16, {1}, {0x80, 0x3f}};             // 1.0
  Tensor i{"i", DType::I64, {1}, {1, 2, 3, 4, 5, 6, 7, 8}};
  f.tensors.push_back(h);
  f.tensors.push_back(b);
  f.tensors.push_back(i);
  return f;
}

// A file with the given header JSON and data bytes.
std::string file_with(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

void expect_data_error(const std::string& bytes, const std::string& part) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted a file that should fail with: " << part;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Safetensors, RoundTripsEveryByteAndTheMetadata) {
  const SafetensorsFile f = sample();
  const std::string bytes = serialize_safetensors(f);
  const SafetensorsFile g = parse_safetensors(bytes, "mem");
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (size_t k = 0; k < f.tensors.size(); ++k) {
    EXPECT_EQ(g.tensors[k].name, f.tensors[k].name);
    EXPECT_EQ(g.tensors[k].dtype, f.tensors[k].dtype);
    EXPECT_EQ(g.tensors[k].shape, f.tensors[k].shape);
    EXPECT_EQ(g.tensors[k].bytes, f.tensors[k].bytes);
  }
  EXPECT_EQ(g.metadata, f.metadata);
  EXPECT_EQ(serialize_safetensors(g), bytes);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // the data section starts 8-byte aligned
}

// The header's one reserved key cannot name a tensor: the file would hold it twice.
TEST(Safetensors, NoTensorIsNamedMetadata) {
  SafetensorsFile f = sample();
  f.tensors[0].name = "__metadata__";
  try {
    serialize_safetensors(f);
    ADD_FAILURE() << "a tensor named __metadata__ was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("keeps for the metadata"), std::string::npos) << e.what();
  }
}

// Metadata that is not UTF-8, such as a Latin-1 path (convert records its checkpoint's), is
// written with U+FFFD for the bad byte; nlohmann's default threw after the work.
TEST(Safetensors, WritesMetadataThatIsNotUtf8) {
  SafetensorsFile f = sample();
  f.metadata["checkpoint"] = "caf\xe9/checkpoint.pt";
  const SafetensorsFile g = parse_safetensors(serialize_safetensors(f), "mem");
  EXPECT_EQ(g.metadata.at("checkpoint"), "caf\xef\xbf\xbd/checkpoint.pt");
}

TEST(Safetensors, ConvertsHalfAndBfloatExactly) {
  const SafetensorsFile f = sample();
  EXPECT_EQ(f.find("h")->to_f32(), (std::vector<float>{1.f, -2.f}));
  EXPECT_EQ(f.find("b")->to_f32(), (std::vector<float>{1.f}));
  Tensor sub{"s", DType::F16, {1}, {0x01, 0x00}};  // smallest subnormal half: 2^-24
  EXPECT_FLOAT_EQ(sub.to_f32()[0], std::ldexp(1.f, -24));
  EXPECT_THROW(f.find("i")->to_f32(), Error);
}

TEST(Safetensors, ZeroWhereTouchesOnlyMaskedElements) {
  Tensor h{"h", DType::F16, {3}, {0x00, 0x3c, 0x00, 0xc0, 0x11, 0x22}};
  h.zero_where({1, 0, 1});
  EXPECT_EQ(h.bytes, (std::vector<uint8_t>{0x00, 0x3c, 0x00, 0x00, 0x11, 0x22}));
  EXPECT_THROW(h.zero_where({1, 0}), Error);
}

TEST(Safetensors, RejectsMalformedFiles) {
  const std::string good = serialize_safetensors(sample());
  expect_data_error("", "shorter than");
  expect_data_error(good.substr(0, 5), "shorter than");
  expect_data_error(good.substr(0, 40), "truncated");               // header cut short
  expect_data_error(good.substr(0, good.size() - 3), "truncated");  // data cut short
  std::string huge = good;
  const uint64_t big = 1ull << 40;
  std::memcpy(huge.data(), &big, 8);
  expect_data_error(huge, "100 MiB");
  expect_data_error(file_with("{not json", ""), "not valid JSON");
  expect_data_error(file_with("[1,2]", ""), "not a JSON object");
  expect_data_error(file_with(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                    "unknown safetensors dtype 'F33'");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"), "needs 8 bytes");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", "abcd"),
                    "past the data section");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd"), "after end");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"), "non-negative");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"), "data_offsets");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd"), "data_offsets");
  expect_data_error(
      file_with(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
          "abcdefgh"),
      "overlap");
  expect_data_error(file_with(R"({"__metadata__":{"k":1}})", ""), "__metadata__");
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "abcd"),
                    "too large");
}

// Found by tests/fuzz/safetensors_fuzz: after a zero dim the size check was skipped, so a dim
// past INT64_MAX was kept as a negative int64_t; `spruce prune -o` then wrote a file that no
// reader, spruce's included, accepts.
TEST(Safetensors, DimsAfterAZeroDimAreCheckedToo) {
  expect_data_error(file_with(R"({"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", ""),
                    "too large");
  expect_data_error(file_with(R"({"w":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", ""),
                    "too large");
  const SafetensorsFile f =
      parse_safetensors(file_with(R"({"w":{"dtype":"F32","shape":[0,3,4],"data_offsets":[0,0]}})", ""), "empty");
  EXPECT_EQ(f.tensors.at(0).shape, (std::vector<int64_t>{0, 3, 4}));
  EXPECT_EQ(f.tensors.at(0).numel(), 0);
}

TEST(Safetensors, WritesAtomicallyAndFailsCleanly) {
  std::string tmpl = (fs::temp_directory_path() / "spruce_io_XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);  // unique: ctest runs this suite under several ISA caps at once
  const fs::path dir = tmpl;
  const std::string path = (dir / "out.safetensors").string();
  write_safetensors(path, sample());
  EXPECT_EQ(read_safetensors(path).tensors.size(), 4u);
  EXPECT_THROW(write_safetensors((dir / "missing" / "x.safetensors").string(), sample()), Error);
  EXPECT_THROW(read_safetensors((dir / "nope.safetensors").string()), Error);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);  // no temporary file left behind
  fs::remove_all(dir);
}

// Found by tests/fuzz/safetensors_fuzz: objects inside a top-level list reached the duplicate-key
// check with no top-level key yet (vector::back() of an empty vector).
TEST(Safetensors, ObjectsInATopLevelListAreNotAHeader) {
  expect_data_error(file_with(R"([{"a": {"__metadata__": {"k": "v"}}}])", ""), "not a JSON object");
  expect_data_error(file_with(R"([{"__metadata__": {"k": "v", "k": "w"}}])", ""), "not a JSON object");
}

// The format describes every byte: names are unique and offsets cover the data exactly.
// A file of `spruce convert` given to prune, train --init or --teacher: named as what it is, not as
// a file that lacks the weights by their names.
TEST(Safetensors, ConvertedModelsAreNamedWhereWeightsBelong) {
  SafetensorsFile f = sample();
  EXPECT_NO_THROW(refuse_converted_model(f, "run/model.safetensors"));
  f.metadata[kConvertedModelKey] = "spruce-converted-model/2";
  try {
    refuse_converted_model(f, "conv.safetensors");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "conv.safetensors is a converted model (from `spruce convert`), packed for inference; give the weights "
              "of a training run instead (its model.safetensors)");
  }
}

TEST(Safetensors, IsStrict) {
  const std::string a = R"("a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]})";
  expect_data_error(file_with("{" + a + ", " + a + "}", "xy"), "the name 'a' is given twice");
  expect_data_error(file_with(R"({"__metadata__": {"k": "1", "k": "2"}, )" + a + "}", "xy"), "__metadata__ key 'k'");
  expect_data_error(file_with("{" + a + "}", "xyz"), "1 bytes after the last tensor");
  expect_data_error(file_with(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}})", "xyz"),
                    "bytes 0 to 1");
  // Python's safetensors refuses these too; nlohmann alone read another tensor than it does.
  expect_data_error(file_with(R"({"a": {"dtype": "U8", "shape": [2], "dtype": "I8", "data_offsets": [0, 2]}})", "xy"),
                    "tensor 'a': the field 'dtype' is given twice");
  expect_data_error(file_with(R"({"a": {"dtype": "U8", "shape": [2], "shape": [1], "data_offsets": [0, 2]}})", "xy"),
                    "the field 'shape' is given twice");
  expect_data_error(file_with("{" + a + "}" + std::string("\0\0\0", 3), "xy"), "the header holds a NUL byte at 60");
  expect_data_error(file_with("\xef\xbb\xbf{" + a + "}", "xy"), "it does not begin with '{'");
  expect_data_error(file_with(" {" + a + "}", "xy"), "it does not begin with '{'");
  EXPECT_NO_THROW(parse_safetensors(file_with("{" + a + "}    ", "xy"),
                                    "padded.safetensors"));  // trailing spaces are the format's padding
  SafetensorsFile twice;
  twice.tensors = {Tensor::from_f32("w", {1}, std::vector<float>{1}.data()),
                   Tensor::from_f32("w", {1}, std::vector<float>{2}.data())};
  EXPECT_THROW(serialize_safetensors(twice), Error);
}
