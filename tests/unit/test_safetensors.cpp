// safetensors reader and writer: round trips through files, and one test per kind of malformed input,
// each checked both through a file on disk (mmap) and through from_bytes, with its own message.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <visopt/io/safetensors.hpp>

#include "catch.hpp"

namespace {

using visopt::DType;
using visopt::Shape;
using visopt::Tensor;
using visopt::io::SafeTensors;
namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() / ("visopt_safetensors_" + std::to_string(random()) + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

/// 8-byte little-endian length + header + data; `declared_length` overrides the length to forge bad files.
std::vector<std::byte> assemble(const std::string& header, std::size_t data_bytes = 0,
                                std::optional<std::uint64_t> declared_length = std::nullopt) {
  const std::uint64_t length = declared_length.value_or(header.size());
  std::vector<std::byte> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::byte>((length >> (8 * i)) & 0xffu));
  for (char c : header) bytes.push_back(static_cast<std::byte>(c));
  for (std::size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<std::byte>(i * 7 + 1));
  return bytes;
}

void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

/// Malformed input must be refused the same way from memory and from a mapped file, naming the source.
/// "fuzz-input" in `fragment` stands for the source, so that the file variant expects its path there.
void require_rejected(const std::vector<std::byte>& bytes, const std::string& fragment) {
  VISOPT_REQUIRE_ERROR(SafeTensors::from_bytes(bytes, "fuzz-input"), fragment);
  VISOPT_REQUIRE_ERROR(SafeTensors::from_bytes(bytes, "fuzz-input"), "safetensors: ");
  VISOPT_REQUIRE_ERROR(SafeTensors::from_bytes(bytes, "fuzz-input"), "'fuzz-input'");
  TempDir dir;
  const fs::path file = dir / "bad.safetensors";
  write_bytes(file, bytes);
  std::string file_fragment = fragment;
  if (const auto at = file_fragment.find("fuzz-input"); at != std::string::npos)
    file_fragment.replace(at, std::string("fuzz-input").size(), file.string());
  VISOPT_REQUIRE_ERROR(SafeTensors::open(file), file_fragment);
  VISOPT_REQUIRE_ERROR(SafeTensors::open(file), "'" + file.string() + "'");
}

std::vector<float> to_vector(const Tensor& t) {
  const Tensor f = t.to(DType::f32);
  std::vector<float> v(static_cast<std::size_t>(f.numel()));
  std::memcpy(v.data(), f.data(), v.size() * sizeof(float));
  return v;
}

// Exactly representable in f32, f16 and bf16 alike, so every conversion must reproduce them bit for bit.
const std::vector<float> exact_values = {1.5f, -2.0f, 0.25f, 1024.0f, 0.0f, -0.125f, 3.0f, 96.0f, -0.5f, 7.0f, 0.75f, -64.0f};

}  // namespace

TEST_CASE("safetensors round trip of an F32 tensor loads as f32, f16 and bf16", "[safetensors]") {
  TempDir dir;
  const Tensor weight = Tensor::from_vector({3, 4}, exact_values);
  const Tensor bias = Tensor::from_vector({3}, {0.1f, -0.2f, 0.3f});  // not representable in f16: rounded
  visopt::io::save_safetensors(dir / "w.safetensors", {{"fc.weight", weight}, {"fc.bias", bias}});
  const SafeTensors file = SafeTensors::open(dir / "w.safetensors");

  REQUIRE(file.names() == std::vector<std::string>{"fc.bias", "fc.weight"});
  REQUIRE(file.info("fc.weight").dtype == "F32");
  REQUIRE(file.info("fc.weight").shape == Shape{3, 4});
  // Data goes in the order given: weight first.
  REQUIRE(file.info("fc.weight").begin == 0);
  REQUIRE(file.info("fc.weight").end == 48);
  REQUIRE(file.info("fc.bias").begin == 48);

  const Tensor as_f32 = file.load("fc.weight");
  REQUIRE(as_f32.dtype() == DType::f32);
  REQUIRE(to_vector(as_f32) == exact_values);
  const Tensor as_f16 = file.load("fc.weight", DType::f16);
  REQUIRE(as_f16.dtype() == DType::f16);
  REQUIRE(to_vector(as_f16) == exact_values);
  const Tensor as_bf16 = file.load("fc.weight", DType::bf16);
  REQUIRE(as_bf16.dtype() == DType::bf16);
  REQUIRE(to_vector(as_bf16) == exact_values);

  const auto bias_f16 = file.load("fc.bias", DType::f16);
  for (std::size_t i = 0; i < 3; ++i) {
    const float original = bias.data_as<float>()[i];
    REQUIRE(bias_f16.data_as<visopt::half>()[i].bits == visopt::to_half(original).bits);
  }
  REQUIRE(to_vector(file.load("fc.bias")) == std::vector<float>{0.1f, -0.2f, 0.3f});
}

TEST_CASE("safetensors round trip of F16 and BF16 tensors keeps their bits and converts exactly", "[safetensors]") {
  TempDir dir;
  const Tensor source = Tensor::from_vector({2, 2, 3}, exact_values);
  const Tensor f16 = source.to(DType::f16);
  const Tensor bf16 = source.to(DType::bf16);
  visopt::io::save_safetensors(dir / "h.safetensors", {{"half", f16}, {"brain", bf16}});
  const SafeTensors file = SafeTensors::open(dir / "h.safetensors");

  REQUIRE(file.info("half").dtype == "F16");
  REQUIRE(file.info("brain").dtype == "BF16");
  REQUIRE(file.raw_bytes("half").size() == 24);
  REQUIRE(std::memcmp(file.raw_bytes("half").data(), f16.data(), 24) == 0);
  REQUIRE(std::memcmp(file.raw_bytes("brain").data(), bf16.data(), 24) == 0);

  for (const char* name : {"half", "brain"}) {
    for (DType as : {DType::f32, DType::f16, DType::bf16}) {
      const Tensor loaded = file.load(name, as);
      REQUIRE(loaded.dtype() == as);
      REQUIRE(loaded.shape() == Shape{2, 2, 3});
      REQUIRE(to_vector(loaded) == exact_values);
    }
  }
}

TEST_CASE("safetensors metadata round trip and header padding", "[safetensors]") {
  TempDir dir;
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"source", "torchvision resnet18"}};
  const Tensor t = Tensor::from_vector({2}, {1.0f, 2.0f});
  visopt::io::save_safetensors(dir / "m.safetensors", {{"x", t}}, metadata);
  const SafeTensors file = SafeTensors::open(dir / "m.safetensors");
  REQUIRE(file.metadata() == metadata);
  REQUIRE(file.names() == std::vector<std::string>{"x"});
  REQUIRE(file.source() == (dir / "m.safetensors").string());

  // Like the reference writer: header length a multiple of 8, so the data section starts aligned.
  std::ifstream in(dir / "m.safetensors", std::ios::binary);
  unsigned char length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | length[i];
  REQUIRE(n % 8 == 0);
  REQUIRE(fs::file_size(dir / "m.safetensors") == 8 + n + 8);
}

TEST_CASE("safetensors load with an expected shape", "[safetensors]") {
  const Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  TempDir dir;
  visopt::io::save_safetensors(dir / "s.safetensors", {{"layer1.0.conv1.weight", t}});
  const SafeTensors file = SafeTensors::open(dir / "s.safetensors");
  const Tensor loaded = file.load("layer1.0.conv1.weight", Shape{2, 3});
  REQUIRE(to_vector(loaded) == std::vector<float>{1, 2, 3, 4, 5, 6});
  REQUIRE(file.load("layer1.0.conv1.weight", Shape{2, 3}, DType::bf16).dtype() == DType::bf16);
}

TEST_CASE("safetensors accepts an empty header, empty tensors and unaligned data", "[safetensors]") {
  const SafeTensors empty = SafeTensors::from_bytes(assemble("{}"));
  REQUIRE(empty.names().empty());
  REQUIRE(empty.metadata().empty());
  REQUIRE_FALSE(empty.contains("x"));

  // A 3-byte pad leaves the F32 data at an odd address: load() must not read it in place.
  std::vector<std::byte> bytes = assemble(
      R"({"__metadata__":{"k":"v"},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},)"
      R"("v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   )");
  const float values[2] = {2.5f, -1.0f};
  const auto* raw = reinterpret_cast<const std::byte*>(values);
  bytes.insert(bytes.end(), raw, raw + 8);
  REQUIRE((bytes.size() - 8) % 4 != 0);
  SafeTensors file = SafeTensors::from_bytes(bytes, "unaligned");
  REQUIRE(file.metadata().at("k") == "v");
  REQUIRE(file.load("z").numel() == 0);
  REQUIRE(file.load("z").shape() == Shape{0, 5});
  REQUIRE(to_vector(file.load("v")) == std::vector<float>{2.5f, -1.0f});
  REQUIRE(to_vector(file.load("v", DType::f16)) == std::vector<float>{2.5f, -1.0f});

  // Moving keeps the data reachable (the bytes stay where they are).
  SafeTensors moved = std::move(file);
  REQUIRE(to_vector(moved.load("v")) == std::vector<float>{2.5f, -1.0f});
}

TEST_CASE("safetensors rejects a file shorter than 8 bytes", "[safetensors]") {
  require_rejected({std::byte{1}, std::byte{0}, std::byte{0}}, "truncated: 3 bytes, needs at least 8 for the header length");
  require_rejected({}, "truncated: 0 bytes");
}

TEST_CASE("safetensors rejects a header length past the end of the file", "[safetensors]") {
  require_rejected(assemble("{}", 0, 1000), "declares a header of 1000 bytes that runs past the end of the file: the file has 10 bytes");
}

TEST_CASE("safetensors rejects an absurd header length", "[safetensors]") {
  require_rejected(assemble("{}", 0, std::uint64_t{1} << 62), "more than the limit of 100000000");
}

TEST_CASE("safetensors rejects a header that is not JSON", "[safetensors]") {
  require_rejected(assemble(R"({"x": {"dtype": "F32",)"), "is not valid JSON: [json.exception.parse_error");
}

TEST_CASE("safetensors rejects a JSON header that is not an object", "[safetensors]") {
  require_rejected(assemble("[1, 2, 3]"), "header of 'fuzz-input' is a JSON array, expected an object");
}

TEST_CASE("safetensors rejects an unknown dtype", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", 4),
                   "tensor 'x' in 'fuzz-input' has unknown dtype \"F12\"; known dtypes: F32, F16, BF16, F64");
}

TEST_CASE("safetensors rejects data offsets outside the data section", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12),
                   "tensor 'x' in 'fuzz-input' ends at byte 16, but the data section has only 12 bytes");
}

TEST_CASE("safetensors rejects overlapping tensors", "[safetensors]") {
  require_rejected(assemble(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[20,28]},)"
                            R"("c":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}})",
                            28),
                   "tensors 'a' [0, 16) and 'c' [4, 16) in 'fuzz-input' overlap");
}

TEST_CASE("safetensors rejects a byte size that does not match the shape", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
                   "tensor 'x' in 'fuzz-input' has shape [2,3] of F32 = 24 bytes, but its data_offsets span 20");
}

TEST_CASE("safetensors rejects a shape whose size overflows", "[safetensors]") {
  require_rejected(
      assemble(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})"),
      "element count overflows");
  require_rejected(assemble(R"({"x":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
                   "size in bytes overflows 64 bits");
}

TEST_CASE("safetensors reports a missing tensor", "[safetensors]") {
  const SafeTensors file =
      SafeTensors::from_bytes(assemble(R"({"fc.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4), "w");
  REQUIRE_FALSE(file.contains("fc.bias"));
  VISOPT_REQUIRE_ERROR(file.info("fc.bias"), "safetensors: no tensor named 'fc.bias' in 'w'; it holds 1 tensors: 'fc.weight'");
  VISOPT_REQUIRE_ERROR(file.load("fc.bias"), "no tensor named 'fc.bias'");
  VISOPT_REQUIRE_ERROR(file.raw_bytes("fc.bias"), "no tensor named 'fc.bias'");
}

TEST_CASE("safetensors reports a wrong shape on load", "[safetensors]") {
  const SafeTensors file = SafeTensors::from_bytes(
      assemble(R"({"layer1.0.conv1.weight":{"dtype":"F16","shape":[4,4,1,1],"data_offsets":[0,32]}})", 32), "FILE");
  VISOPT_REQUIRE_ERROR(file.load("layer1.0.conv1.weight", Shape{4, 4, 3, 3}),
                       "safetensors: tensor 'layer1.0.conv1.weight' in 'FILE' has shape [4,4,1,1], model expects [4,4,3,3]");
}

TEST_CASE("safetensors reports a source dtype that load cannot convert", "[safetensors]") {
  const SafeTensors file = SafeTensors::from_bytes(
      assemble(R"({"steps":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16), "opt");
  REQUIRE(file.raw_bytes("steps").size() == 16);
  VISOPT_REQUIRE_ERROR(file.load("steps"),
                       "tensor 'steps' in 'opt' has dtype I64, which load() cannot convert; accepted source dtypes: F32, F16, BF16");
}

TEST_CASE("safetensors rejects a negative shape entry", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,0]}})"),
                   "has shape [2,-3] whose extent -3 at axis 1 is negative");
}

TEST_CASE("safetensors rejects a non-integer shape entry", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,0]}})"),
                   "whose extent 2.5 at axis 0 is not an integer");
}

TEST_CASE("safetensors rejects an entry missing a field", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", 4),
                   "tensor 'x' in 'fuzz-input' has no \"shape\" field");
}

TEST_CASE("safetensors rejects an entry that is not an object", "[safetensors]") {
  require_rejected(assemble(R"({"x":[1,2]})"), "tensor 'x' in 'fuzz-input' is described by a JSON array");
}

TEST_CASE("safetensors rejects a field of the wrong JSON type", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4),
                   "has a \"dtype\" of JSON type number, expected a string");
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4),
                   "has a \"shape\" of JSON type string, expected an array");
}

TEST_CASE("safetensors rejects data_offsets that are not a [begin, end] pair", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8),
                   "has data_offsets [0,4,8], expected an array [begin, end]");
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8),
                   "whose begin is negative");
}

TEST_CASE("safetensors rejects data_offsets that begin after they end", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
                   "has data_offsets [8,4] that begin after they end");
}

TEST_CASE("safetensors rejects a rank beyond visopt's limit", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"U8","shape":[1,1,1,1,1,1,1],"data_offsets":[0,1]}})", 1),
                   "has rank 7");
}

TEST_CASE("safetensors rejects a tensor name given twice", "[safetensors]") {
  require_rejected(assemble(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                            R"("x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                            2),
                   "tensor 'x' appears twice in the header");
}

TEST_CASE("safetensors rejects malformed metadata", "[safetensors]") {
  require_rejected(assemble(R"({"__metadata__":["pt"]})"), "\"__metadata__\" in 'fuzz-input' is a JSON array");
  require_rejected(assemble(R"({"__metadata__":{"epoch":3}})"),
                   "\"__metadata__\" entry 'epoch' in 'fuzz-input' is a JSON number, expected a string");
}

TEST_CASE("safetensors open reports a file that does not exist", "[safetensors]") {
  TempDir dir;
  VISOPT_REQUIRE_ERROR(SafeTensors::open(dir / "absent.safetensors"), "cannot open '" + (dir / "absent.safetensors").string());
  VISOPT_REQUIRE_ERROR(SafeTensors::open(dir.path), "is not a regular file");
}

TEST_CASE("save_safetensors refuses what it cannot write", "[safetensors]") {
  TempDir dir;
  const Tensor t = Tensor::from_vector({1}, {1.0f});
  VISOPT_REQUIRE_ERROR(visopt::io::save_safetensors(dir / "d.safetensors", {{"a", t}, {"a", t}}), "appears twice");
  VISOPT_REQUIRE_ERROR(visopt::io::save_safetensors(dir / "d.safetensors", {{"__metadata__", t}}), "reserved");
  const Tensor nhwc = Tensor::empty({1, 3, 2, 2}, DType::f32, visopt::Device::cpu(), visopt::MemoryFormat::channels_last);
  VISOPT_REQUIRE_ERROR(visopt::io::save_safetensors(dir / "d.safetensors", {{"img", nhwc}}), "is not contiguous");
  REQUIRE_FALSE(fs::exists(dir / "d.safetensors"));
}
