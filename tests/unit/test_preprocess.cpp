// Resampling and the evaluation transforms (visopt/io/preprocess.hpp), and which transform a model's
// weights get (visopt/models/preprocessing.hpp); model names (visopt/models/registry.hpp). No decoder.

#include <cstdlib>
#include <vector>

#include <visopt/models/registry.hpp>
#include <visopt/models/preprocessing.hpp>
#include <visopt/models/summary.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {

/// 7x5 pixels whose channels wrap around 255 from pixel to pixel: a hard image for a resampler.
io::Image wrapping_pattern() {
  io::Image image;
  image.width = 7;
  image.height = 5;
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) image.rgb.push_back(static_cast<std::uint8_t>((x * 37 + y * 91 + c * 53) % 256));
  return image;
}

/// PIL computes in fixed point and visopt in float: each byte within 1.
void check_close(const io::Image& got, const std::vector<int>& pil) {
  REQUIRE(got.rgb.size() == pil.size());
  for (std::size_t i = 0; i < pil.size(); ++i) {
    INFO("byte " << i);
    CHECK(std::abs(static_cast<int>(got.rgb[i]) - pil[i]) <= 1);
  }
}

}  // namespace

TEST_CASE("bicubic and bilinear resizes agree with PIL 9.4's BICUBIC and BILINEAR within 1", "[preprocess]") {
  const io::Image image = wrapping_pattern();
  // Image.frombytes('RGB', (7, 5), ...).resize(size, Image.BICUBIC / Image.BILINEAR).tobytes()
  check_close(io::resize_image(image, 3, 2, io::Interpolation::bicubic),
              {95, 124, 133, 130, 157, 134, 133, 127, 139, 110, 136, 149, 116, 129, 121, 126, 140, 130});
  check_close(io::resize_image(image, 3, 2, io::Interpolation::bilinear),
              {99, 127, 137, 129, 154, 131, 129, 126, 137, 106, 134, 147, 118, 132, 127, 128, 141, 127});
  const io::Image up = io::resize_image(image, 11, 9, io::Interpolation::bicubic);
  // The first row and the last pixel of PIL's 11x9 upscale: overshoot clamps at 0 and 255 as PIL's does.
  check_close(io::Image{11, 1, {up.rgb.begin(), up.rgb.begin() + 33}},
              {0, 43, 96, 6, 59, 110, 33, 86, 140, 57, 110, 179, 80, 132, 208, 104, 157, 230, 126, 195, 255, 155, 233, 215,
               194, 255, 40, 224, 113, 36, 238, 0, 68});
  check_close(io::Image{1, 1, {up.rgb.end() - 3, up.rgb.end()}}, {64, 139, 190});
}

TEST_CASE("timm's and torchvision's transforms, and which one a model's weights get", "[preprocess]") {
  const io::Preprocess timm = io::timm_transform(224);
  CHECK(timm.resize == 248);  // floor(224 / 0.9), timm's scale_size
  CHECK(timm.interpolation == io::Interpolation::bicubic);
  CHECK(timm.mean[0] == 0.5f);
  CHECK(timm.std[2] == 0.5f);
  const io::Preprocess tv = io::torchvision_transform(224);
  CHECK(tv.resize == 256);
  CHECK(tv.interpolation == io::Interpolation::bilinear);
  CHECK(tv.mean[0] == 0.485f);

  const auto vit = models::vit_ti_16(models::RandomWeights{1});
  CHECK(vit.naming == models::WeightNaming::torchvision);
  CHECK(models::preprocess_for(vit).interpolation == io::Interpolation::bilinear);
  models::ViT timm_named = vit;
  timm_named.naming = models::WeightNaming::timm;
  CHECK(models::preprocess_for(timm_named).resize == 248);
  CHECK(models::preprocess_for(models::vit_l_16(models::RandomWeights{1})).resize == 242);  // torchvision's ViT_L_16 weights
  CHECK(models::preprocess_for(models::AnyModel(models::resnet18(models::RandomWeights{1})), 64).crop == 64);
  CHECK(io::describe(timm) == "bicubic resize to 248, centre crop 224, mean 0.5/0.5/0.5, std 0.5/0.5/0.5");
}

TEST_CASE("model names: visopt's, torchvision's and timm's, and a clear error for others", "[preprocess][names]") {
  CHECK(models::parse_model_name("resnet101").depth == 101);
  const models::ModelSpec b16 = models::parse_model_name("vit_b_16");
  CHECK((b16.vit && b16.size == models::ViTSize::base && b16.patch == 16 && b16.image_size == 0));
  const models::ModelSpec timm = models::parse_model_name("vit_large_patch32_384.orig_in21k_ft_in1k");
  CHECK((timm.vit && timm.size == models::ViTSize::large && timm.patch == 32 && timm.image_size == 384));
  CHECK(models::parse_model_name("vit_tiny_patch16_224").size == models::ViTSize::tiny);
  for (const char* bad : {"resnet51", "vit_b_8", "vit_huge_patch14_224", "vit_base_patch16", "alexnet", "resnet"}) {
    INFO(bad);
    VISOPT_REQUIRE_ERROR(models::parse_model_name(bad), "is not one of resnet18");
  }
  const models::AnyModel m = models::model_by_name("vit_small_patch32_224", models::RandomWeights{2});
  CHECK(models::name_of(m) == "vit_s_32");
  CHECK(std::get<models::ViT>(m).image_size == 224);
  CHECK(models::num_classes_of(models::model_by_name("resnet18", models::RandomWeights{2})) == 1000);
}

TEST_CASE("model names: DeiT, distilled or not, in visopt's and timm's spelling", "[preprocess][names][deit]") {
  const models::ModelSpec timm = models::parse_model_name("deit_small_distilled_patch16_224.fb_in1k");
  CHECK((timm.family == "deit" && timm.vit && timm.distilled && timm.size == models::ViTSize::small && timm.patch == 16 &&
         timm.image_size == 224));
  const models::ModelSpec plain = models::parse_model_name("deit_base_patch16_384");
  CHECK((plain.family == "deit" && !plain.distilled && plain.size == models::ViTSize::base && plain.image_size == 384));
  const models::ModelSpec short_name = models::parse_model_name("deit_ti_16_distilled");
  CHECK((short_name.distilled && short_name.size == models::ViTSize::tiny && short_name.image_size == 0));
  for (const char* bad : {"deit_large_patch16_224", "deit_b_32", "deit_tiny_patch32_224", "deit_ti_16_distiled", "deit_"}) {
    INFO(bad);
    VISOPT_REQUIRE_ERROR(models::parse_model_name(bad), "deit_{ti,s,b}_16[_distilled]");
  }
  const models::ViT deit = std::get<models::ViT>(models::model_by_name("deit_ti_16_distilled", models::RandomWeights{3}));
  CHECK((deit.name == "deit_ti_16_distilled" && deit.distilled && deit.tokens() == 14 * 14 + 2));
  CHECK(deit.parameter_count() == std::get<models::ViT>(models::model_by_name("vit_ti_16", models::RandomWeights{3})).parameter_count() +
                                      192 /* dist_token */ + 192 /* its position */ + 192 * 1000 + 1000 /* head_dist */);
  // summary() walks the same network: one more token through every block, and the second head.
  const auto vit_summary = models::summarize(std::get<models::ViT>(models::model_by_name("vit_ti_16", models::RandomWeights{3})));
  const auto deit_summary = models::summarize(deit);
  CHECK(deit_summary.parameters == deit.parameter_count());
  CHECK(deit_summary.macs_per_image > vit_summary.macs_per_image);
  // DeiT's weights expect timm's geometry with ImageNet's statistics.
  CHECK(io::describe(models::preprocess_for(deit)) ==
        "bicubic resize to 248, centre crop 224, mean 0.485/0.456/0.406, std 0.229/0.224/0.225");
}
