// Building models from weights files: a missing, extra or mis-shaped tensor, a file for another
// model, or an image size the position embedding cannot serve is a visopt::Error naming it.

#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "oracle.hpp"

using namespace visopt;
using visopt::testing::fixture;

namespace {

/// Writes `file`'s tensors to a temporary file, without `drop` and with `extra` added.
std::filesystem::path rewrite(const io::SafeTensors& file, const std::string& out_name, const std::string& drop,
                              const std::string& extra = "") {
  std::vector<Tensor> keep;
  std::vector<std::pair<std::string, TensorView>> tensors;
  for (const auto& name : file.names()) {
    if (name == drop) continue;
    keep.push_back(file.load(name));
    tensors.emplace_back(name, keep.back().view());
  }
  const Tensor extra_tensor = Tensor::from_vector({2}, {1, 2});
  if (!extra.empty()) tensors.emplace_back(extra, extra_tensor.view());
  const auto path = std::filesystem::temp_directory_path() / out_name;
  io::save_safetensors(path, tensors);
  return path;
}

}  // namespace

TEST_CASE("a weights file for another model is rejected with the mismatching tensor named", "[loading]") {
  const auto resnet18 = io::SafeTensors::open(fixture("resnet18_64.weights.safetensors"));
  VISOPT_REQUIRE_ERROR(models::resnet50(resnet18),
                       "tensor 'layer1.0.conv1.weight' in '" + resnet18.source() + "' has shape [64,64,3,3], model expects [64,64,1,1]");
  const auto vit = io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors"));
  VISOPT_REQUIRE_ERROR(models::resnet18(vit), "resnet18: weights '" + vit.source() + "' lack tensor 'conv1.weight'");
  VISOPT_REQUIRE_ERROR(models::vit_b_16(vit), "has shape [192,3,16,16], model expects [768,3,16,16]");
}

TEST_CASE("a missing tensor is named", "[loading]") {
  const auto file = io::SafeTensors::open(fixture("resnet18_64.weights.safetensors"));
  const auto path = rewrite(file, "visopt_missing.safetensors", "layer2.1.bn2.running_var");
  VISOPT_REQUIRE_ERROR(models::resnet18(io::SafeTensors::open(path)),
                       "resnet18: weights '" + path.string() + "' lack tensor 'layer2.1.bn2.running_var' (shape [128])");
  std::filesystem::remove(path);
}

TEST_CASE("an extra tensor is named", "[loading]") {
  const auto file = io::SafeTensors::open(fixture("resnet18_64.weights.safetensors"));
  const auto path = rewrite(file, "visopt_extra.safetensors", "", "layer5.0.conv1.weight");
  VISOPT_REQUIRE_ERROR(models::resnet18(io::SafeTensors::open(path)),
                       "hold 1 tensor(s) the model does not use ('layer5.0.conv1.weight')");
  std::filesystem::remove(path);
}

TEST_CASE("a ViT's image size must match its position embedding", "[loading]") {
  const auto file = io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors"));
  CHECK(models::vit_ti_16(file).image_size == 64);
  VISOPT_REQUIRE_ERROR(models::vit_ti_16(file, {.image_size = 224}),
                       "vit_ti_16: image size 224 needs 197 position embeddings, but 'encoder.pos_embedding' holds 17");
  VISOPT_REQUIRE_ERROR(models::vit_ti_16(file, {.image_size = 72}), "image size 72 is not a positive multiple of the patch size 16");
  VISOPT_REQUIRE_ERROR(models::resnet(42, models::RandomWeights{}), "depth 42 is not one of 18, 34, 50, 101, 152");
}

TEST_CASE("torchvision and timm names give the same ViT", "[loading]") {
  const auto tv = models::vit_ti_16(io::SafeTensors::open(fixture("vit_ti16_64.weights.safetensors")));
  const auto timm = models::vit_ti_16(io::SafeTensors::open(fixture("vit_ti16_64.timm.safetensors")));
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
  };
  CHECK(same(tv.embed.position, timm.embed.position));
  CHECK(same(tv.blocks[11].attention.qkv.weight, timm.blocks[11].attention.qkv.weight));
  CHECK(same(tv.blocks[3].mlp.fc2.bias, timm.blocks[3].mlp.fc2.bias));
  CHECK(same(tv.head.weight, timm.head.weight));
}

TEST_CASE("parameter counts match torchvision's", "[loading]") {
  CHECK(models::resnet18(models::RandomWeights{}).parameter_count() == 11'689'512);
  CHECK(models::resnet50(models::RandomWeights{}).parameter_count() == 25'557'032);
  CHECK(models::vit_b_16(models::RandomWeights{}).parameter_count() == 86'567'656);
}

TEST_CASE("run() rejects inputs the engine was not compiled for", "[loading]") {
  auto engine = compile<O1, backend::Reference>(models::resnet18(models::RandomWeights{}), {.max_batch = 2, .image_size = 32, .warmup = 0});
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({3, 3, 32, 32})), "batch of 3 images, but the engine was compiled for 1..2");
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({1, 1, 32, 32})), "input has shape [1,1,32,32], expected images [N,3,H,W]");
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({1, 3, 32, 32}, DType::f16)), "input must be f32 images");
  VISOPT_REQUIRE_ERROR(engine.run(Tensor::zeros({1, 3, 16, 16})), "images must be at least 32x32");
  auto vit = compile<O0, backend::Reference>(models::vit_ti_16(models::RandomWeights{}, {.image_size = 32}), {.max_batch = 1, .warmup = 0});
  VISOPT_REQUIRE_ERROR(vit.run(Tensor::zeros({1, 3, 64, 64})), "vit_ti_16: input has shape [1,3,64,64], but the model takes 32x32 images");
  // The right shape and dtype in the wrong layout: NHWC memory is not taken for NCHW.
  const Tensor nhwc = Tensor::empty({1, 3, 32, 32}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  VISOPT_REQUIRE_ERROR(engine.run(nhwc), "resnet18: input of shape [1,3,32,32] must be contiguous NCHW");
  VISOPT_REQUIRE_ERROR(vit.run(nhwc), "vit_ti_16: input of shape [1,3,32,32] must be contiguous NCHW");
}

TEST_CASE("weights of a dtype the model cannot take are refused with the tensor and the dtypes it can", "[loading]") {
  // A file whose first tensor holds integers (say, a quantised or training checkpoint): the header is valid,
  // the dtype is not one a model converts from.
  for (const auto& [dtype, element] : {std::pair{std::string("I64"), 8}, std::pair{std::string("F64"), 8}, std::pair{std::string("U8"), 1}}) {
    const std::size_t bytes = std::size_t{64} * 3 * 7 * 7 * static_cast<std::size_t>(element);
    const std::string header = R"({"conv1.weight":{"dtype":")" + dtype + R"(","shape":[64,3,7,7],"data_offsets":[0,)" +
                               std::to_string(bytes) + "]}}";
    std::vector<std::byte> file(8 + header.size() + bytes);
    for (std::size_t i = 0; i < 8; ++i) file[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xffu);
    std::memcpy(file.data() + 8, header.data(), header.size());
    const auto weights = io::SafeTensors::from_bytes(std::move(file), dtype + "-weights");
    INFO(dtype);
    VISOPT_REQUIRE_ERROR(models::resnet18(weights), "tensor 'conv1.weight' in '" + dtype + "-weights' has dtype " + dtype +
                                                        ", which load() cannot convert; accepted source dtypes: F32, F16, BF16");
  }
}
