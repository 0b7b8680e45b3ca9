// The int8 operations of the quantized level (O4) against fp32 arithmetic on the same dequantized
// values: an int8 matmul or convolution may differ from it only by its weights' per-channel rounding
// and its output's rounding to the output step.

#include <cmath>
#include <random>

#include <visopt/backend/onednn/executor.hpp>

#include "catch.hpp"

using namespace visopt;
using namespace visopt::backend::onednn;

namespace {

Tensor random_tensor(const Shape& shape, unsigned seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape);
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(generator);
  return t;
}

/// x quantized to `dtype` with step max|x|/127 (s8) or max/255 (u8, x clamped at 0), and its dequantized copy.
std::pair<Tensor, Tensor> quantize(const Tensor& x, DType dtype) {
  float top = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) top = std::max(top, std::fabs(x.data_as<float>()[i]));
  const Quantization q{top / (dtype == DType::u8 ? 255.0f : 127.0f), dtype};
  Tensor stored = Tensor::empty(x.shape(), dtype).as_quantized(q), real = Tensor::empty(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const float v = std::nearbyint(x.data_as<float>()[i] / q.step);
    const float clamped = dtype == DType::u8 ? std::clamp(v, 0.0f, 255.0f) : std::clamp(v, -127.0f, 127.0f);
    if (dtype == DType::u8) static_cast<std::uint8_t*>(stored.data())[i] = static_cast<std::uint8_t>(clamped);
    else static_cast<std::int8_t*>(stored.data())[i] = static_cast<std::int8_t>(clamped);
    real.data_as<float>()[i] = clamped * q.step;
  }
  return {stored, real};
}

float value(const Tensor& y, std::int64_t i) {
  if (y.dtype() == DType::f32) return y.data_as<float>()[i];
  if (y.dtype() == DType::bf16) return to_float(y.data_as<bfloat16>()[i]);
  const float step = y.quantization().step;
  return y.dtype() == DType::u8 ? static_cast<std::uint8_t*>(y.data())[i] * step : static_cast<std::int8_t*>(y.data())[i] * step;
}

/// max|y - ref| / max|ref|.
double relative_error(const Tensor& y, const std::vector<float>& ref) {
  double diff = 0, top = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, double(std::fabs(value(y, static_cast<std::int64_t>(i)) - ref[i])));
    top = std::max(top, double(std::fabs(ref[i])));
  }
  return diff / top;
}

}  // namespace

TEST_CASE("onednn int8: a matmul matches fp32 on its dequantized input, in f32, s8 with GELU and planes", "[onednn][int8]") {
  Context context(0);
  runtime::BatchPlans<> plans;
  const std::int64_t m = 37, k = 96, n = 48;
  const Tensor x = random_tensor({m, k}, 1), weight = random_tensor({n, k}, 2, 0.1f), bias = random_tensor({n}, 3);
  const auto [xq, xr] = quantize(x, DType::s8);
  auto reference = [&](nn::Activation act) {
    std::vector<float> y(static_cast<std::size_t>(m * n));
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t o = 0; o < n; ++o) {
        double s = bias.data_as<float>()[o];
        for (std::int64_t c = 0; c < k; ++c) s += double(xr.data_as<float>()[i * k + c]) * weight.data_as<float>()[o * k + c];
        const float v = static_cast<float>(s);
        y[static_cast<std::size_t>(i * n + o)] = act == nn::Activation::gelu ? 0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f))) : v;
      }
    return y;
  };
  runtime::with_plan(plans, {m, k}, [&] {
    LinearOp plain({weight, bias}, {});
    Tensor y = Tensor::empty({m, n});
    plain.run(context, plans, xq, y);
    CHECK(plain.ran_int8());
    CHECK(relative_error(y, reference(nn::Activation::none)) < 0.01);  // weights rounded to 1/254 of their row's range

    LinearOp hidden({weight, bias}, {nn::Activation::gelu, false});
    const std::vector<float> ref = reference(nn::Activation::gelu);
    const float top = *std::max_element(ref.begin(), ref.end());
    Tensor h = Tensor::empty({m, n}, DType::s8).as_quantized({top / 127.0f, DType::s8});
    hidden.run(context, plans, xq, h);
    CHECK(relative_error(h, ref) < 0.01 + 0.5 / 127);  // and the output to half a step

    LinearOp split({weight, bias}, {});
    Tensor planes = Tensor::empty({3, m, n / 3});
    split.run_planes(context, plans, xq, planes);
    std::vector<float> planar(ref.size());
    const std::vector<float> full = reference(nn::Activation::none);
    for (std::int64_t g = 0; g < 3; ++g)
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t o = 0; o < n / 3; ++o)
          planar[static_cast<std::size_t>((g * m + i) * (n / 3) + o)] = full[static_cast<std::size_t>(i * n + g * (n / 3) + o)];
    CHECK(relative_error(planes, planar) < 0.01);
  });
}

TEST_CASE("onednn int8: a convolution writes u8 in its step, adding an s8 residual read in its own", "[onednn][int8]") {
  Context context(0);
  runtime::BatchPlans<> plans;
  const std::int64_t c = 32, k = 48, h = 9;
  const Tensor x = random_tensor({1, c, h, h}, 4), weight = random_tensor({k, c, 3, 3}, 5, 0.05f),
               bias = random_tensor({k}, 6), shortcut = random_tensor({1, k, h, h}, 7);
  // NHWC, as the int8 level keeps activations: quantize in NCHW order, then lay out channels last.
  auto nhwc = [&](const Tensor& t) {
    Tensor out = Tensor::empty(t.shape(), t.dtype(), Device::cpu(), MemoryFormat::channels_last).with_quantization(t.quantization());
    const std::int64_t channels = t.dim(1), plane = t.dim(2) * t.dim(3);
    for (std::int64_t ch = 0; ch < channels; ++ch)
      for (std::int64_t p = 0; p < plane; ++p)
        static_cast<std::uint8_t*>(out.data())[p * channels + ch] = static_cast<const std::uint8_t*>(t.data())[ch * plane + p];
    return out;
  };
  const auto [xq, xr] = quantize(x, DType::u8);
  const auto [rq, rr] = quantize(shortcut, DType::s8);
  std::vector<float> ref(static_cast<std::size_t>(k * h * h));  // NHWC order, relu(conv + bias + shortcut)
  for (std::int64_t o = 0; o < k; ++o)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < h; ++j) {
        double s = bias.data_as<float>()[o] + rr.data_as<float>()[(o * h + i) * h + j];
        for (std::int64_t ch = 0; ch < c; ++ch)
          for (int di = -1; di <= 1; ++di)
            for (int dj = -1; dj <= 1; ++dj) {
              if (i + di < 0 || i + di >= h || j + dj < 0 || j + dj >= h) continue;
              s += double(xr.data_as<float>()[(ch * h + i + di) * h + j + dj]) * weight.data_as<float>()[((o * c + ch) * 3 + di + 1) * 3 + dj + 1];
            }
        ref[static_cast<std::size_t>((i * h + j) * k + o)] = std::max(0.0f, static_cast<float>(s));
      }
  const float top = *std::max_element(ref.begin(), ref.end());
  const Quantization out{top / 255.0f, DType::u8};
  runtime::with_plan(plans, {1, c, h, h}, [&] {
    ConvOp conv({weight, bias, nn::Conv2dGeometry{1, 1, 1, 1, 1, 1, 1}}, {true, nn::Activation::relu});
    const Tensor input = nhwc(xq), y = nhwc(rq).as_quantized(out);  // the shortcut's buffer becomes the output
    conv.run(context, plans, input, y, [](const TensorView& t) { return describe(t); }, rq.quantization());
    CHECK(conv.ran_int8());
    CHECK(relative_error(y, ref) < 0.01 + 0.5 / 255);
  });
}
