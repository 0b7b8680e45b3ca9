// core/ and policy/: exact fp16/bf16 conversions on edge values (exhaustively where the space is
// small), tensor layout rules, and the compile-time shape of policies and levels.

#include <bit>
#include <cmath>
#include <limits>

#include <visopt/visopt.hpp>

#include "catch.hpp"

using namespace visopt;

namespace {
std::uint16_t half_bits(float f) { return to_half(f).bits; }
std::uint16_t bf16_bits(float f) { return to_bfloat16(f).bits; }
float pow2(int e) { return std::ldexp(1.0f, e); }
}  // namespace

TEST_CASE("fp16 conversion rounds to nearest even on edge values", "[dtype]") {
  CHECK(half_bits(0.0f) == 0x0000);
  CHECK(half_bits(-0.0f) == 0x8000);
  CHECK(half_bits(1.0f) == 0x3c00);
  CHECK(half_bits(-2.0f) == 0xc000);
  CHECK(half_bits(65504.0f) == 0x7bff);            // largest finite
  CHECK(half_bits(65519.0f) == 0x7bff);            // below the halfway point to 65536
  CHECK(half_bits(65520.0f) == 0x7c00);            // the tie rounds to even: infinity
  CHECK(half_bits(1e6f) == 0x7c00);
  CHECK(half_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(half_bits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(half_bits(pow2(-14)) == 0x0400);           // smallest normal
  CHECK(half_bits(pow2(-24)) == 0x0001);           // smallest subnormal
  CHECK(half_bits(pow2(-25)) == 0x0000);           // tie between 0 and the smallest subnormal: even is 0
  CHECK(half_bits(1.5f * pow2(-25)) == 0x0001);    // above the tie
  CHECK(half_bits(3.0f * pow2(-25)) == 0x0002);    // tie between 1 and 2 subnormal units: even is 2
  CHECK(half_bits(5.0f * pow2(-25)) == 0x0002);    // tie between 2 and 3: even is 2
  CHECK(half_bits(1.0f + pow2(-11)) == 0x3c00);    // tie in the normal range: even mantissa
  CHECK(half_bits(1.0f + 3.0f * pow2(-11)) == 0x3c02);
  CHECK(half_bits(pow2(-15) - pow2(-26)) == 0x0200);  // subnormal rounding carries correctly
  const std::uint16_t nan = half_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7c00) == 0x7c00);
  CHECK((nan & 0x03ff) != 0);
  CHECK(std::isnan(to_float(half{0x7e00})));
  CHECK(to_float(half{0x0001}) == pow2(-24));
  CHECK(to_float(half{0x03ff}) == 1023.0f * pow2(-24));
  CHECK(to_float(half{0xfbff}) == -65504.0f);
}

TEST_CASE("every fp16 value survives a round trip through fp32", "[dtype]") {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const half h{static_cast<std::uint16_t>(bits)};
    const float f = to_float(h);
    if (std::isnan(f)) continue;
    REQUIRE(to_half(f).bits == h.bits);
  }
}

TEST_CASE("bf16 conversion rounds to nearest even on edge values", "[dtype]") {
  CHECK(bf16_bits(1.0f) == 0x3f80);
  CHECK(bf16_bits(-0.0f) == 0x8000);
  CHECK(bf16_bits(1.0f + pow2(-8)) == 0x3f80);         // tie: even
  CHECK(bf16_bits(1.0f + 3.0f * pow2(-8)) == 0x3f82);  // tie: up to even
  CHECK(bf16_bits(1.0f + pow2(-8) + pow2(-20)) == 0x3f81);
  CHECK(bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest bf16
  CHECK(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bf16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(bf16_bits(std::bit_cast<float>(0x00018000u)) == 0x0002);  // subnormal tie: even
  const std::uint16_t nan = bf16_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7f80) == 0x7f80);
  CHECK((nan & 0x007f) != 0);
  CHECK(std::isnan(to_float(to_bfloat16(std::bit_cast<float>(0x7f800001u)))));  // signalling NaN stays NaN
}

TEST_CASE("every bf16 value survives a round trip through fp32", "[dtype]") {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const bfloat16 b{static_cast<std::uint16_t>(bits)};
    const float f = to_float(b);
    if (std::isnan(f)) continue;
    REQUIRE(to_bfloat16(f).bits == b.bits);
  }
}

TEST_CASE("convert_elements converts between all dtypes", "[dtype]") {
  const std::vector<float> values{0.0f, 1.0f, -2.5f, 65504.0f, 1e-7f};
  std::vector<half> h(values.size());
  convert_elements(values.data(), DType::f32, h.data(), DType::f16, values.size());
  std::vector<bfloat16> b(values.size());
  convert_elements(h.data(), DType::f16, b.data(), DType::bf16, values.size());
  std::vector<float> back(values.size());
  convert_elements(b.data(), DType::bf16, back.data(), DType::f32, values.size());
  CHECK(back[1] == 1.0f);
  CHECK(back[2] == -2.5f);
  CHECK(back[3] == 65536.0f);  // 65504 is not a bf16 value; the nearest is 65536
  CHECK(to_float(h[4]) == to_float(to_half(1e-7f)));
}

TEST_CASE("tensors are 64-byte aligned and know their layout", "[tensor]") {
  const Tensor t = Tensor::empty({2, 3, 5, 7});
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK(t.numel() == 210);
  CHECK(t.nbytes() == 840);
  CHECK(t.view().is_contiguous());
  CHECK(t.shape().to_string() == "[2,3,5,7]");

  const Tensor nhwc = Tensor::empty({2, 3, 5, 7}, DType::f16, Device::cpu(), MemoryFormat::channels_last);
  CHECK(nhwc.view().is_channels_last());
  CHECK_FALSE(nhwc.view().is_contiguous());
  CHECK(nhwc.view().stride(1) == 1);
  CHECK(nhwc.view().stride(3) == 3);
  CHECK(nhwc.nbytes() == 420);
}

TEST_CASE("tensor misuse is a visopt::Error that says what", "[tensor]") {
  const Tensor t = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  VISOPT_REQUIRE_ERROR(t.data_as<half>(), "asked for f16 data of a f32 tensor of shape [2,2]");
  VISOPT_REQUIRE_ERROR(t.reshaped({3}), "cannot reshape [2,2] to [3]");
  VISOPT_REQUIRE_ERROR(Tensor::from_vector({3}, {1, 2}), "2 values for shape [3]");
  VISOPT_REQUIRE_ERROR(Tensor::empty({2, 2}, DType::f32, Device::cuda()), "no GPU allocator is installed");
  VISOPT_REQUIRE_ERROR(Shape({1, -2}), "extent -2 at axis 1 is negative");
  const Tensor h = t.to(DType::f16);
  CHECK(to_float(h.data_as<half>()[3]) == 4.0f);
  CHECK(h.to(DType::f32).data_as<float>()[2] == 3.0f);
}

TEST_CASE("levels are the bundles of DESIGN.md and with<> overrides one axis", "[policy]") {
  STATIC_REQUIRE(std::is_same_v<O0::precision, precision::fp32>);
  STATIC_REQUIRE(std::is_same_v<O0::fusion, fusion::none>);
  STATIC_REQUIRE(std::is_same_v<O1::precision, precision::tf32>);
  STATIC_REQUIRE(std::is_same_v<O1::fusion, fusion::epilogue>);
  STATIC_REQUIRE(std::is_same_v<O1::tuning, tuning::measured>);
  STATIC_REQUIRE(std::is_same_v<O2::precision, precision::half>);
  STATIC_REQUIRE(std::is_same_v<O2::layout, layout::nhwc>);
  STATIC_REQUIRE(std::is_same_v<O3::execution, execution::graph_capture>);

  using Custom = O3::with<precision::bf16>;
  STATIC_REQUIRE(std::is_same_v<Custom::precision, precision::bf16>);
  STATIC_REQUIRE(std::is_same_v<Custom::layout, layout::nhwc>);
  STATIC_REQUIRE(std::is_same_v<Custom::execution, execution::graph_capture>);
  using Two = O1::with<layout::nhwc, fusion::fold_bn>;
  STATIC_REQUIRE(std::is_same_v<Two::layout, layout::nhwc>);
  STATIC_REQUIRE(std::is_same_v<Two::fusion, fusion::fold_bn>);
  STATIC_REQUIRE(std::is_same_v<Two::precision, precision::tf32>);
  STATIC_REQUIRE(PolicyBundle<Custom>);
  CHECK(Custom::name == "custom");
  CHECK(describe_policy<O2>() == "precision=half layout=nhwc fusion=epilogue execution=eager tuning=measured");
}

TEST_CASE("a custom bundle runs on the reference backend and the report names its choices", "[policy]") {
  using FoldOnly = O0::with<fusion::fold_bn>;
  auto engine = compile<FoldOnly, backend::Reference>(models::resnet(18, models::RandomWeights{3}),
                                                      {.max_batch = 1, .image_size = 32, .warmup = 0});
  CHECK(engine.report().has("fold_bn"));
  CHECK_FALSE(engine.report().has("epilogue_fusion"));
  CHECK(engine.report().level == "custom");
  CHECK(engine.report().json()["policy"] == "precision=fp32 layout=nchw fusion=fold_bn execution=eager tuning=heuristic");
}

TEST_CASE("8-bit types: s8, u8 and e4m3 are quantized, one byte, and convert only with their step", "[dtype]") {
  for (const DType t : {DType::s8, DType::u8, DType::e4m3}) {
    CHECK(is_quantized(t));
    CHECK(dtype_size(t) == 1);
  }
  CHECK(dtype_name(DType::e4m3) == "e4m3");
  CHECK_FALSE(is_quantized(DType::f16));
  const float one = 1.0f;
  std::uint8_t byte = 0;
  CHECK_THROWS_WITH(convert_elements(&one, DType::f32, &byte, DType::e4m3, 1), Catch::Contains("only with their scale"));
}

TEST_CASE("a calibration range gives int8 steps from its clip and the FP8 step from its largest value", "[dtype][calibration]") {
  const runtime::Calibration::Range relu{"conv.3", "[64,64,3,3]", 2.55f, true, 4.48f};
  CHECK(relu.quantization().dtype == DType::u8);
  CHECK(relu.quantization().step == Approx(0.01f));
  CHECK(relu.fp8().dtype == DType::e4m3);
  CHECK(relu.fp8().step == Approx(0.01f));  // 4.48 / 448: the maximum, not the clip
  const runtime::Calibration::Range older{"linear.0", "[10,4]", 4.48f, false};  // saved before amax was kept
  CHECK(older.fp8().step == Approx(0.01f));
  // The JSON keeps amax; a file without it (format 1 as first written) still loads, a bad one is an error.
  runtime::Calibration c;
  c.model = "m";
  c.method = "max";
  c.images = 1;
  c.ranges = {relu};
  nlohmann::json j = c.json();
  CHECK(runtime::Calibration::from_json(j, "test").ranges[0].amax == 4.48f);
  j["ranges"][0].erase("amax");
  CHECK(runtime::Calibration::from_json(j, "test").ranges[0].fp8().step == Approx(2.55f / 448));
  j["ranges"][0]["amax"] = -1.0;
  CHECK_THROWS_WITH(runtime::Calibration::from_json(j, "test"), Catch::Contains("conv.3 has amax -1"));
}

TEST_CASE("calibrate() records each tensor's largest value next to its clip", "[calibration]") {
  const auto model = models::resnet18(models::RandomWeights{4});
  Tensor images = Tensor::empty({2, 3, 32, 32});
  for (std::int64_t i = 0; i < images.numel(); ++i) images.data_as<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  const runtime::Calibration c = calibrate<backend::Reference>(model, images, {.method = runtime::CalibrationMethod::percentile, .percentile = 99.0});
  REQUIRE(c.ranges.size() == 21);  // 20 convolutions and the classifier
  for (const auto& r : c.ranges) {
    INFO(r.tensor << " clip " << r.clip << " amax " << r.amax);
    CHECK(r.amax >= r.clip);
    CHECK(r.amax > 0.0f);
  }
}
