// The reference backend's kernels: each against numbers worked out by hand, and against a direct loop
// in double over random inputs and many geometries, plus the errors they raise on wrong inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "visopt/backend/reference/kernels.hpp"

namespace {

namespace ref = visopt::backend::reference;
using visopt::DType;
using visopt::Shape;
using visopt::Tensor;
using visopt::TensorView;
using visopt::nn::Activation;
using visopt::nn::Conv2dGeometry;
using std::int64_t;

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  Tensor t = Tensor::empty(shape);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

std::vector<float> random_vector(int64_t count, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> values(const Tensor& t) {
  const float* p = t.data_as<float>();
  return std::vector<float>(p, p + t.numel());
}

/// r = max|y − ref| / max|ref|, the measure CONVENTIONS.md uses against an oracle.
double relative_error(const Tensor& y, const std::vector<double>& expected) {
  REQUIRE(static_cast<std::size_t>(y.numel()) == expected.size());
  const float* p = y.data_as<float>();
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(p[i]) - expected[i]));
    scale = std::max(scale, std::abs(expected[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

void check_values(const Tensor& y, const std::vector<double>& expected, double tolerance = 1e-6) {
  REQUIRE(static_cast<std::size_t>(y.numel()) == expected.size());
  const float* p = y.data_as<float>();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i << ": got " << p[i] << ", expected " << expected[i]);
    CHECK(std::abs(static_cast<double>(p[i]) - expected[i]) <= tolerance * std::max(1.0, std::abs(expected[i])));
  }
}

double activate(double v, Activation act) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0.0 ? v : 0.0;
    case Activation::gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  }
  return v;
}

/// The convolution as its definition: seven nested loops in double, then act(· + bias + residual).
std::vector<double> naive_conv2d(const Tensor& x, const Tensor& w, const float* bias, const Conv2dGeometry& g,
                                 const Shape& out, const float* residual, Activation act) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t k = w.dim(0), cg = w.dim(1), r_taps = w.dim(2), s_taps = w.dim(3);
  const int64_t p_out = out[2], q_out = out[3], kg = k / g.groups;
  const float* xp = x.data_as<float>();
  const float* wp = w.data_as<float>();
  std::vector<double> y(static_cast<std::size_t>(out.numel()));
  for (int64_t img = 0; img < n; ++img)
    for (int64_t oc = 0; oc < k; ++oc)
      for (int64_t p = 0; p < p_out; ++p)
        for (int64_t q = 0; q < q_out; ++q) {
          double sum = 0.0;
          const int64_t group = oc / kg;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t r = 0; r < r_taps; ++r)
              for (int64_t s = 0; s < s_taps; ++s) {
                const int64_t ih = p * g.stride_h - g.pad_h + r * g.dilation_h;
                const int64_t iw = q * g.stride_w - g.pad_w + s * g.dilation_w;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                sum += static_cast<double>(xp[((img * c + group * cg + ic) * h + ih) * wd + iw]) *
                       wp[((oc * cg + ic) * r_taps + r) * s_taps + s];
              }
          const std::size_t at = static_cast<std::size_t>(((img * k + oc) * p_out + p) * q_out + q);
          if (bias) sum += bias[oc];
          if (residual) sum += residual[at];
          y[at] = activate(sum, act);
        }
  return y;
}

}  // namespace

TEST_CASE("apply_activation: relu, and gelu in its exact erf form", "[reference]") {
  CHECK(ref::apply_activation(-2.5f, Activation::none) == -2.5f);
  CHECK(ref::apply_activation(-2.5f, Activation::relu) == 0.0f);
  CHECK(ref::apply_activation(3.25f, Activation::relu) == 3.25f);
  // 0.5·x·(1 + erf(x/√2)), worked out in double.
  const std::vector<std::pair<float, double>> gelu = {{1.0f, 0.8413447460685429},   {-1.0f, -0.15865525393145707},
                                                      {2.0f, 1.9544997361036416},   {-3.0f, -0.00404969409489031},
                                                      {0.5f, 0.34573123063700656},  {3.0f, 2.99595030590511},
                                                      {0.0f, 0.0}};
  for (const auto& [x, expected] : gelu) {
    INFO("gelu(" << x << ")");
    CHECK(std::abs(ref::apply_activation(x, Activation::gelu) - expected) <= 1e-6 * std::max(1.0, std::abs(expected)));
  }
  CHECK(visopt::nn::activation_name(Activation::gelu) == "gelu");
}

TEST_CASE("conv2d_output_shape and pool2d_output_shape follow PyTorch and reject impossible shapes", "[reference]") {
  using visopt::nn::conv2d_output_shape;
  using visopt::nn::pool2d_output_shape;
  CHECK(conv2d_output_shape({2, 3, 224, 224}, {64, 3, 7, 7}, {.stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3}) ==
        Shape{2, 64, 112, 112});
  CHECK(conv2d_output_shape({1, 64, 56, 56}, {64, 64, 3, 3}, {.pad_h = 1, .pad_w = 1}) == Shape{1, 64, 56, 56});
  CHECK(conv2d_output_shape({1, 8, 10, 9}, {8, 1, 3, 3}, {.dilation_h = 2, .dilation_w = 2, .groups = 8}) ==
        Shape{1, 8, 6, 5});
  CHECK(conv2d_output_shape({1, 3, 224, 224}, {192, 3, 16, 16}, {.stride_h = 16, .stride_w = 16}) ==
        Shape{1, 192, 14, 14});
  CHECK(pool2d_output_shape({1, 64, 112, 112}, 3, 2, 1) == Shape{1, 64, 56, 56});
  CHECK(pool2d_output_shape({1, 1, 5, 6}, 2, 2, 0) == Shape{1, 1, 2, 3});

  VISOPT_REQUIRE_ERROR(conv2d_output_shape({1, 3, 8, 8}, {4, 2, 3, 3}, {}),
                       "conv2d: input has shape [1,3,8,8], weight [4,2,3,3] expects C=2 channels");
  VISOPT_REQUIRE_ERROR(conv2d_output_shape({1, 6, 8, 8}, {5, 3, 3, 3}, {.groups = 2}),
                       "whose K=5 is not divisible by groups=2");
  VISOPT_REQUIRE_ERROR(conv2d_output_shape({1, 3, 2, 8}, {4, 3, 3, 3}, {}),
                       "padded to 2x8, smaller than the dilated kernel 3x3");
  VISOPT_REQUIRE_ERROR(conv2d_output_shape({1, 3, 8, 8}, {4, 3, 3, 3}, {.stride_h = 0}), "stride (0,1) must be >= 1");
  VISOPT_REQUIRE_ERROR(conv2d_output_shape({3, 8, 8}, {4, 3, 3, 3}, {}), "expected rank 4 [N,C,H,W]");
  VISOPT_REQUIRE_ERROR(pool2d_output_shape({1, 1, 8, 8}, 3, 2, 2), "padding 2 must be between 0 and half the kernel");
}

TEST_CASE("conv2d: hand-computed 2x2 kernel with bias, then with padding, stride, residual and relu", "[reference]") {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]].
  const Tensor x = Tensor::from_vector({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor w = Tensor::from_vector({1, 1, 2, 2}, {1, 2, 3, 4});
  const float bias = 1.0f;

  SECTION("valid, stride 1: y[p,q] = Σ w·x + 1") {
    Tensor y = Tensor::empty({1, 1, 2, 2});
    ref::conv2d(x, w, &bias, {}, y, nullptr, Activation::none);
    // 1·1+2·2+3·4+4·5 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77; plus the bias.
    check_values(y, {38, 48, 68, 78});
  }
  SECTION("pad 1, stride 2, residual, relu") {
    // Windows: rows −1..0 × cols −1..0 sees only x[0,0]·w[1,1] = 4; rows −1..0 × cols 1..2: 2·3 + 3·4 = 18;
    // rows 1..2 × cols −1..0: 4·2 + 7·4 = 36; rows 1..2 × cols 1..2: 5·1 + 6·2 + 8·3 + 9·4 = 77.
    const Tensor residual = Tensor::from_vector({1, 1, 2, 2}, {-10, 0, 0, -100});
    Tensor y = Tensor::empty({1, 1, 2, 2});
    ref::conv2d(x, w, nullptr, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, y,
                residual.data_as<float>(), Activation::none);
    check_values(y, {-6, 18, 36, -23});
    ref::conv2d(x, w, nullptr, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, y,
                residual.data_as<float>(), Activation::relu);
    check_values(y, {0, 18, 36, 0});
  }
  SECTION("two groups: each output channel sees only its half of the input") {
    // Channel 0 = x, channel 1 = 10·x; weight of group 0 sums its 2x2 window, group 1 takes the top-left.
    std::vector<float> two(18);
    for (int i = 0; i < 9; ++i) two[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
    for (int i = 0; i < 9; ++i) two[static_cast<std::size_t>(9 + i)] = static_cast<float>(10 * (i + 1));
    const Tensor x2 = Tensor::from_vector({1, 2, 3, 3}, two);
    const Tensor w2 = Tensor::from_vector({2, 1, 2, 2}, {1, 1, 1, 1, 1, 0, 0, 0});
    Tensor y = Tensor::empty({1, 2, 2, 2});
    ref::conv2d(x2, w2, nullptr, {.groups = 2}, y, nullptr, Activation::none);
    check_values(y, {12, 16, 24, 28, 10, 20, 40, 50});
  }
}

TEST_CASE("conv2d matches a direct double loop over strides, padding, dilation, groups and epilogues",
          "[reference]") {
  struct Case {
    const char* name;
    int64_t n, c, h, w, k, r, s;
    Conv2dGeometry g;
  };
  const std::vector<Case> cases = {
      {"3x3 pad 1, batch 2", 2, 3, 9, 11, 4, 3, 3, {.pad_h = 1, .pad_w = 1}},
      {"3x3 stride 2 pad 1", 1, 4, 10, 10, 6, 3, 3, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {"3x3 dilation 2 pad 2", 1, 3, 12, 9, 5, 3, 3, {.pad_h = 2, .pad_w = 2, .dilation_h = 2, .dilation_w = 2}},
      {"groups 2", 2, 4, 8, 8, 6, 3, 3, {.pad_h = 1, .pad_w = 1, .groups = 2}},
      {"depthwise", 1, 6, 9, 9, 6, 3, 3, {.pad_h = 1, .pad_w = 1, .groups = 6}},
      {"depthwise x2 stride 2, batch 3", 3, 4, 7, 7, 8, 3, 3,
       {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 4}},
      {"1x1 (no im2col), batch 2", 2, 16, 7, 5, 8, 1, 1, {}},
      {"1x1 stride 2", 1, 16, 7, 5, 8, 1, 1, {.stride_h = 2, .stride_w = 2}},
      {"7x7 stride 2 pad 3", 1, 3, 23, 23, 8, 7, 7, {.stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3}},
      {"3x5 asymmetric", 1, 5, 6, 13, 3, 3, 5, {.stride_h = 2, .pad_w = 2, .dilation_w = 2}},
      {"64 channels 3x3 (deep GEMM)", 1, 64, 14, 14, 32, 3, 3, {.pad_h = 1, .pad_w = 1}},
      {"kernel covers the input", 2, 2, 5, 5, 3, 5, 5, {}},
      {"pad 2 stride 3", 2, 3, 4, 4, 2, 3, 3, {.stride_h = 3, .stride_w = 3, .pad_h = 2, .pad_w = 2}},
      {"groups 3, 1x1 (no im2col)", 1, 6, 5, 4, 9, 1, 1, {.groups = 3}},
  };
  struct Epilogue {
    bool bias, residual;
    Activation act;
  };
  const std::vector<Epilogue> epilogues = {{false, false, Activation::none},
                                           {true, false, Activation::relu},
                                           {true, true, Activation::relu},
                                           {false, true, Activation::gelu}};
  std::mt19937 rng(1234);
  for (const Case& cs : cases) {
    const Tensor x = random_tensor({cs.n, cs.c, cs.h, cs.w}, rng);
    const Tensor w = random_tensor({cs.k, cs.c / cs.g.groups, cs.r, cs.s}, rng);
    const std::vector<float> bias = random_vector(cs.k, rng);
    const Shape out = visopt::nn::conv2d_output_shape(x.shape(), w.shape(), cs.g);
    const Tensor residual = random_tensor(out, rng);
    for (const Epilogue& e : epilogues) {
      INFO(cs.name << ", bias " << e.bias << ", residual " << e.residual << ", "
                   << visopt::nn::activation_name(e.act));
      Tensor y = Tensor::empty(out);
      const float* b = e.bias ? bias.data() : nullptr;
      const float* res = e.residual ? residual.data_as<float>() : nullptr;
      ref::conv2d(x, w, b, cs.g, y, res, e.act);
      CHECK(relative_error(y, naive_conv2d(x, w, b, cs.g, out, res, e.act)) <= 1e-5);
    }
  }

  SECTION("the output may be the residual (added in place)") {
    const Case& cs = cases[0];
    const Tensor x = random_tensor({cs.n, cs.c, cs.h, cs.w}, rng);
    const Tensor w = random_tensor({cs.k, cs.c, cs.r, cs.s}, rng);
    const Shape out = visopt::nn::conv2d_output_shape(x.shape(), w.shape(), cs.g);
    Tensor y = random_tensor(out, rng);
    const std::vector<float> residual = values(y);
    ref::conv2d(x, w, nullptr, cs.g, y, y.data_as<float>(), Activation::relu);
    CHECK(relative_error(y, naive_conv2d(x, w, nullptr, cs.g, out, residual.data(), Activation::relu)) <= 1e-5);
  }
}

TEST_CASE("conv2d reports wrong shapes, dtypes and layouts", "[reference]") {
  const Tensor x = Tensor::zeros({1, 3, 8, 8});
  const Tensor w = Tensor::zeros({4, 3, 3, 3});
  Tensor y = Tensor::empty({1, 4, 6, 6});
  VISOPT_REQUIRE_ERROR(ref::conv2d(x, Tensor::zeros({4, 2, 3, 3}), nullptr, {}, y, nullptr, Activation::none),
                       "reference::conv2d: input has shape [1,3,8,8], weight [4,2,3,3] expects C=2 channels");
  VISOPT_REQUIRE_ERROR(ref::conv2d(x, w, nullptr, {}, Tensor::empty({1, 4, 8, 8}), nullptr, Activation::none),
                       "reference::conv2d: output has shape [1,4,8,8], expected [1,4,6,6]");
  Tensor half_storage = Tensor::zeros({1, 3, 8, 8});
  const TensorView half_view(half_storage.data(), DType::f16, Shape{1, 3, 8, 8});
  VISOPT_REQUIRE_ERROR(ref::conv2d(half_view, w, nullptr, {}, y, nullptr, Activation::none),
                       "reference::conv2d: input of shape [1,3,8,8] is f16, the reference backend computes in f32");
  const Tensor nhwc = Tensor::empty({1, 3, 8, 8}, DType::f32, visopt::Device::cpu(), visopt::MemoryFormat::channels_last);
  VISOPT_REQUIRE_ERROR(ref::conv2d(nhwc, w, nullptr, {}, y, nullptr, Activation::none),
                       "reference::conv2d: input of shape [1,3,8,8] is not dense row-major");
  ref::conv2d(x, w, nullptr, {}, y, nullptr, Activation::none);  // the same call with the right arguments runs
  CHECK(y.data_as<float>()[0] == 0.0f);
}

TEST_CASE("batch_norm: hand-computed, and against a direct loop", "[reference]") {
  SECTION("hand") {
    // Channel 0: (x − 1)/2·2 + 0.5; channel 1: (x − 2)/0.5·1 − 1 (eps = 0 keeps the numbers exact).
    const Tensor x = Tensor::from_vector({1, 2, 1, 2}, {1, 2, 3, 4});
    const std::vector<float> mean = {1, 2}, var = {4, 0.25f}, gamma = {2, 1}, beta = {0.5f, -1};
    Tensor y = Tensor::empty({1, 2, 1, 2});
    ref::batch_norm(x, mean.data(), var.data(), gamma.data(), beta.data(), 0.0f, y);
    check_values(y, {0.5, 1.5, 1, 3});
  }
  SECTION("random, in place") {
    std::mt19937 rng(7);
    const int64_t n = 3, c = 5, plane = 6 * 7;
    Tensor x = random_tensor({n, c, 6, 7}, rng, -3.0f, 3.0f);
    const std::vector<float> mean = random_vector(c, rng), gamma = random_vector(c, rng), beta = random_vector(c, rng);
    const std::vector<float> var = random_vector(c, rng, 0.1f, 2.0f);
    const float eps = 1e-5f;
    const std::vector<float> in = values(x);
    std::vector<double> expected(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::size_t ch = i / static_cast<std::size_t>(plane) % static_cast<std::size_t>(c);
      expected[i] = (in[i] - static_cast<double>(mean[ch])) / std::sqrt(static_cast<double>(var[ch]) + eps) * gamma[ch] +
                    beta[ch];
    }
    ref::batch_norm(x, mean.data(), var.data(), gamma.data(), beta.data(), eps, x);
    CHECK(relative_error(x, expected) <= 1e-6);
  }
  VISOPT_REQUIRE_ERROR(ref::batch_norm(Tensor::zeros({1, 2, 3, 3}), nullptr, nullptr, nullptr, nullptr, 1e-5f,
                                       Tensor::empty({1, 2, 3, 4})),
                       "reference::batch_norm: output has shape [1,2,3,4], expected [1,2,3,3]");
}

TEST_CASE("activation and add: in place and against a direct loop", "[reference]") {
  SECTION("hand") {
    Tensor x = Tensor::from_vector({4}, {-2, -0.5f, 0, 1});
    Tensor y = Tensor::empty({4});
    ref::activation(x, y, Activation::gelu);
    check_values(y, {-0.04550026389635842, -0.15426876936299344, 0, 0.8413447460685429});
    ref::activation(x, x, Activation::relu);
    check_values(x, {0, 0, 0, 1});
    const Tensor a = Tensor::from_vector({2, 2}, {1, -2, 3, -4});
    Tensor b = Tensor::from_vector({2, 2}, {0.5f, 1, -4, 10});
    ref::add(a, b, y.reshaped({2, 2}));
    check_values(y, {1.5, -1, -1, 6});
    ref::add(a, b, b, Activation::relu);  // in place into the second input
    check_values(b, {1.5, 0, 0, 6});
  }
  SECTION("random, large enough to run in parallel") {
    std::mt19937 rng(11);
    const Shape shape{2, 8, 64, 65};
    const Tensor a = random_tensor(shape, rng, -4.0f, 4.0f);
    const Tensor b = random_tensor(shape, rng, -4.0f, 4.0f);
    const std::vector<float> av = values(a), bv = values(b);
    for (Activation act : {Activation::none, Activation::relu, Activation::gelu}) {
      INFO(visopt::nn::activation_name(act));
      Tensor y = Tensor::empty(shape);
      ref::add(a, b, y, act);
      std::vector<double> expected(av.size());
      for (std::size_t i = 0; i < av.size(); ++i) expected[i] = activate(static_cast<double>(av[i]) + bv[i], act);
      CHECK(relative_error(y, expected) <= 1e-6);
      Tensor z = a.clone();
      ref::activation(z, z, act);
      for (std::size_t i = 0; i < av.size(); ++i) expected[i] = activate(av[i], act);
      CHECK(relative_error(z, expected) <= 1e-6);
    }
  }
  VISOPT_REQUIRE_ERROR(ref::add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}), Tensor::empty({2, 3})),
                       "reference::add: inputs have shapes [2,3] and [3,2], expected equal shapes");
}

TEST_CASE("max_pool2d: padding counts as -inf, and against a direct loop", "[reference]") {
  SECTION("hand: all-negative input, kernel 3 stride 2 pad 1") {
    // x[h,w] = −(4h + w + 1). Zero padding would win every window; −inf padding never does.
    std::vector<float> v(16);
    for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = -static_cast<float>(i + 1);
    const Tensor x = Tensor::from_vector({1, 1, 4, 4}, v);
    Tensor y = Tensor::empty({1, 1, 2, 2});
    ref::max_pool2d(x, y, 3, 2, 1);
    check_values(y, {-1, -2, -5, -6});
  }
  SECTION("random: ResNet's stem pool and others") {
    struct Case {
      int64_t n, c, h, w;
      int kernel, stride, padding;
    };
    std::mt19937 rng(5);
    for (const Case& cs : {Case{2, 3, 112, 112, 3, 2, 1}, Case{1, 4, 9, 7, 2, 2, 0}, Case{1, 2, 10, 11, 3, 1, 1},
                           Case{3, 2, 8, 8, 5, 3, 2}}) {
      INFO("pool " << cs.kernel << "/" << cs.stride << "/" << cs.padding << " on " << cs.h << "x" << cs.w);
      const Tensor x = random_tensor({cs.n, cs.c, cs.h, cs.w}, rng);
      const Shape out = visopt::nn::pool2d_output_shape(x.shape(), cs.kernel, cs.stride, cs.padding);
      Tensor y = Tensor::empty(out);
      ref::max_pool2d(x, y, cs.kernel, cs.stride, cs.padding);
      const float* xp = x.data_as<float>();
      std::vector<double> expected;
      for (int64_t plane = 0; plane < cs.n * cs.c; ++plane)
        for (int64_t p = 0; p < out[2]; ++p)
          for (int64_t q = 0; q < out[3]; ++q) {
            double best = -std::numeric_limits<double>::infinity();
            for (int64_t i = 0; i < cs.kernel; ++i)
              for (int64_t j = 0; j < cs.kernel; ++j) {
                const int64_t ih = p * cs.stride - cs.padding + i, iw = q * cs.stride - cs.padding + j;
                if (ih >= 0 && ih < cs.h && iw >= 0 && iw < cs.w)
                  best = std::max(best, static_cast<double>(xp[(plane * cs.h + ih) * cs.w + iw]));
              }
            expected.push_back(best);
          }
      CHECK(relative_error(y, expected) == 0.0);
    }
  }
  SECTION("a NaN propagates") {
    Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, std::numeric_limits<float>::quiet_NaN(), 3, 4});
    Tensor y = Tensor::empty({1, 1, 1, 1});
    ref::max_pool2d(x, y, 2, 2, 0);
    CHECK(std::isnan(y.data_as<float>()[0]));
  }
  VISOPT_REQUIRE_ERROR(ref::max_pool2d(Tensor::zeros({1, 2, 8, 8}), Tensor::empty({1, 2, 3, 3}), 3, 2, 1),
                       "reference::max_pool2d: output has shape [1,2,3,3], expected [1,2,4,4]");
}

TEST_CASE("adaptive_avg_pool2d: 5x7 to 3x2 by hand, and any size against a direct loop", "[reference]") {
  SECTION("hand: 5x7 -> 3x2") {
    // Rows {0,1}, {1,2,3}, {3,4}; columns {0..3}, {3..6}. With x[h,w] = 7h + w the mean of a window is
    // 7·mean(rows) + mean(columns): row means 0.5, 2, 3.5; column means 1.5, 4.5.
    std::vector<float> v(35);
    for (int i = 0; i < 35; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
    const Tensor x = Tensor::from_vector({1, 1, 5, 7}, v);
    Tensor y = Tensor::empty({1, 1, 3, 2});
    ref::adaptive_avg_pool2d(x, y);
    check_values(y, {5, 8, 15.5, 18.5, 26, 29});
  }
  SECTION("random: global, shrinking and growing") {
    std::mt19937 rng(3);
    const std::vector<std::pair<Shape, Shape>> cases = {{{2, 8, 7, 7}, {2, 8, 1, 1}},
                                                        {{1, 3, 10, 13}, {1, 3, 4, 5}},
                                                        {{1, 2, 3, 4}, {1, 2, 5, 7}},
                                                        {{2, 64, 14, 14}, {2, 64, 7, 7}}};
    for (const auto& [in_shape, out_shape] : cases) {
      INFO(in_shape << " -> " << out_shape);
      const Tensor x = random_tensor(in_shape, rng);
      Tensor y = Tensor::empty(out_shape);
      ref::adaptive_avg_pool2d(x, y);
      const int64_t h = in_shape[2], w = in_shape[3], oh = out_shape[2], ow = out_shape[3];
      const float* xp = x.data_as<float>();
      std::vector<double> expected;
      for (int64_t plane = 0; plane < in_shape[0] * in_shape[1]; ++plane)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            const auto h0 = static_cast<int64_t>(std::floor(static_cast<double>(i * h) / oh));
            const auto h1 = static_cast<int64_t>(std::ceil(static_cast<double>((i + 1) * h) / oh));
            const auto w0 = static_cast<int64_t>(std::floor(static_cast<double>(j * w) / ow));
            const auto w1 = static_cast<int64_t>(std::ceil(static_cast<double>((j + 1) * w) / ow));
            double sum = 0.0;
            for (int64_t a = h0; a < h1; ++a)
              for (int64_t b = w0; b < w1; ++b) sum += xp[(plane * h + a) * w + b];
            expected.push_back(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
          }
      CHECK(relative_error(y, expected) <= 1e-6);
    }
  }
  VISOPT_REQUIRE_ERROR(ref::adaptive_avg_pool2d(Tensor::zeros({1, 2, 8, 8}), Tensor::empty({1, 3, 1, 1})),
                       "reference::adaptive_avg_pool2d: output has shape [1,3,1,1], expected [1,2,P,Q]");
}

TEST_CASE("linear: residual added after the activation, and against a direct loop", "[reference]") {
  SECTION("hand") {
    // x·wᵀ + bias = [[1−3+1, 3−1], [4−6+1, 7.5−1]] = [[−1, 2], [−1, 6.5]].
    const Tensor x = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
    const Tensor w = Tensor::from_vector({2, 3}, {1, 0, -1, 0.5f, 0.5f, 0.5f});
    const std::vector<float> bias = {1, -1};
    Tensor y = Tensor::empty({2, 2});
    ref::linear(x, w, bias.data(), y, nullptr, Activation::none);
    check_values(y, {-1, 2, -1, 6.5});
    ref::linear(x, w, bias.data(), y, nullptr, Activation::relu);
    check_values(y, {0, 2, 0, 6.5});
    // relu first, then + residual: element (0,0) is relu(−1) + 10 = 10, where relu(−1 + 10) would be 9.
    const Tensor residual = Tensor::from_vector({2, 2}, {10, 20, 30, 40});
    ref::linear(x, w, bias.data(), y, residual.data_as<float>(), Activation::relu);
    check_values(y, {10, 22, 30, 46.5});
  }
  SECTION("random: sizes, rank-3 input, epilogues, residual in place") {
    std::mt19937 rng(9);
    struct Case {
      Shape x;
      int64_t n;
    };
    for (const Case& cs : {Case{{5, 7}, 3}, Case{{2, 17, 64}, 48}, Case{{197, 192}, 768}, Case{{1, 33}, 1}}) {
      const int64_t k = cs.x[cs.x.rank() - 1], m = cs.x.numel() / k;
      Shape out = cs.x;
      out[out.rank() - 1] = cs.n;
      const Tensor x = random_tensor(cs.x, rng);
      const Tensor w = random_tensor({cs.n, k}, rng);
      const std::vector<float> bias = random_vector(cs.n, rng);
      const Tensor residual = random_tensor(out, rng);
      for (Activation act : {Activation::none, Activation::gelu}) {
        for (bool with_residual : {false, true}) {
          INFO(cs.x << " x [" << cs.n << "," << k << "], " << visopt::nn::activation_name(act) << ", residual "
                    << with_residual);
          Tensor y = with_residual ? residual.clone() : Tensor::empty(out);
          ref::linear(x, w, bias.data(), y, with_residual ? y.data_as<float>() : nullptr, act);
          const float* xp = x.data_as<float>();
          const float* wp = w.data_as<float>();
          const float* rp = residual.data_as<float>();
          std::vector<double> expected(static_cast<std::size_t>(m * cs.n));
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < cs.n; ++j) {
              double sum = bias[static_cast<std::size_t>(j)];
              for (int64_t l = 0; l < k; ++l) sum += static_cast<double>(xp[i * k + l]) * wp[j * k + l];
              expected[static_cast<std::size_t>(i * cs.n + j)] =
                  activate(sum, act) + (with_residual ? rp[i * cs.n + j] : 0.0);
            }
          CHECK(relative_error(y, expected) <= 1e-5);
        }
      }
    }
  }
  VISOPT_REQUIRE_ERROR(ref::linear(Tensor::zeros({4, 5}), Tensor::zeros({3, 6}), nullptr, Tensor::empty({4, 3}),
                                   nullptr, Activation::none),
                       "reference::linear: input has shape [4,5], weight [3,6] expects K=6 features");
  VISOPT_REQUIRE_ERROR(ref::linear(Tensor::zeros({4, 6}), Tensor::zeros({3, 6}), nullptr, Tensor::empty({4, 6}),
                                   nullptr, Activation::none),
                       "reference::linear: output has shape [4,6], expected [4,3]");
}

TEST_CASE("layer_norm: hand-computed, and in double against a direct loop", "[reference]") {
  SECTION("hand") {
    // Row [1,2,3,4]: mean 2.5, biased variance 1.25, so x̂ = (x − 2.5)/√1.25 = ±0.4472135955, ±1.3416407865.
    const Tensor x = Tensor::from_vector({1, 4}, {1, 2, 3, 4});
    const std::vector<float> gamma = {1, 1, 2, 2}, beta = {0, 1, 0, 1};
    Tensor y = Tensor::empty({1, 4});
    ref::layer_norm(x, gamma.data(), beta.data(), 0.0f, y);
    check_values(y, {-1.3416407864998738, 0.5527864045000421, 0.8944271909999159, 3.6832815729997477});
    ref::layer_norm(x, nullptr, nullptr, 0.0f, y);
    check_values(y, {-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738});
  }
  SECTION("random, with a large offset, in place") {
    std::mt19937 rng(13);
    for (float offset : {0.0f, 1000.0f}) {
      INFO("offset " << offset);
      Tensor x = random_tensor({2, 197, 192}, rng, offset - 1.0f, offset + 1.0f);
      const std::vector<float> gamma = random_vector(192, rng), beta = random_vector(192, rng);
      const std::vector<float> in = values(x);
      std::vector<double> expected(in.size());
      for (std::size_t row = 0; row < in.size() / 192; ++row) {
        double mean = 0.0, var = 0.0;
        for (std::size_t j = 0; j < 192; ++j) mean += in[row * 192 + j];
        mean /= 192.0;
        for (std::size_t j = 0; j < 192; ++j) var += (in[row * 192 + j] - mean) * (in[row * 192 + j] - mean);
        var /= 192.0;
        for (std::size_t j = 0; j < 192; ++j)
          expected[row * 192 + j] = (in[row * 192 + j] - mean) / std::sqrt(var + 1e-6) * gamma[j] + beta[j];
      }
      ref::layer_norm(x, gamma.data(), beta.data(), 1e-6f, x);
      CHECK(relative_error(x, expected) <= 1e-6);
    }
  }
  VISOPT_REQUIRE_ERROR(ref::layer_norm(Tensor::zeros({2, 4}), nullptr, nullptr, 1e-5f, Tensor::empty({2, 5})),
                       "reference::layer_norm: output has shape [2,5], expected [2,4]");
}

TEST_CASE("softmax_rows: hand-computed and numerically stable", "[reference]") {
  Tensor t = Tensor::from_vector({3, 3}, {1, 2, 3, 1000, 1000, 1000, -1000, 0, -1000});
  ref::softmax_rows(t.data_as<float>(), 3, 3);
  // e^1, e^2, e^3 normalised; a row of large equal values stays uniform instead of overflowing to NaN.
  check_values(t, {0.09003057317038046, 0.24472847105479767, 0.6652409557748219, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 1, 0});
  std::mt19937 rng(17);
  Tensor r = random_tensor({64, 300}, rng, -20.0f, 20.0f);
  const std::vector<float> in = values(r);
  ref::softmax_rows(r.data_as<float>(), 64, 300);
  std::vector<double> expected(in.size());
  for (std::size_t i = 0; i < 64; ++i) {
    double sum = 0.0;
    for (std::size_t j = 0; j < 300; ++j) sum += std::exp(static_cast<double>(in[i * 300 + j]));
    for (std::size_t j = 0; j < 300; ++j) expected[i * 300 + j] = std::exp(static_cast<double>(in[i * 300 + j])) / sum;
  }
  CHECK(relative_error(r, expected) <= 1e-5);
}

TEST_CASE("self_attention: two heads by hand, and against a double implementation", "[reference]") {
  SECTION("hand: L = 2, two heads of width 1") {
    // Row = [q_h0, q_h1, k_h0, k_h1, v_h0, v_h1]. Head 0: keys 0 and 1; token 0's query ln 3 gives softmax
    // [1/4, 3/4], so y = 4/4 + 3·8/4 = 7; token 1's query 0 gives [1/2, 1/2], y = 6. Head 1: all queries 0,
    // so each token averages v_h1 = {2, 6} to 4.
    const float ln3 = static_cast<float>(std::log(3.0));
    const Tensor qkv = Tensor::from_vector({1, 2, 6}, {ln3, 0, 0, 5, 4, 2, 0, 0, 1, -5, 8, 6});
    Tensor y = Tensor::empty({1, 2, 2});
    ref::self_attention(qkv, 2, y);
    check_values(y, {7, 4, 6, 4}, 1e-6);
  }
  SECTION("random against double") {
    std::mt19937 rng(21);
    struct Case {
      int64_t b, l;
      int heads;
      int64_t head_dim;
    };
    for (const Case& cs : {Case{1, 5, 1, 4}, Case{2, 17, 3, 8}, Case{3, 50, 3, 64}, Case{1, 197, 2, 32}}) {
      INFO("B " << cs.b << " L " << cs.l << " heads " << cs.heads << " head_dim " << cs.head_dim);
      const int64_t d = cs.heads * cs.head_dim;
      const Tensor qkv = random_tensor({cs.b, cs.l, 3 * d}, rng, -2.0f, 2.0f);
      Tensor y = Tensor::empty({cs.b, cs.l, d});
      ref::self_attention(qkv, cs.heads, y);
      const float* p = qkv.data_as<float>();
      std::vector<double> expected(static_cast<std::size_t>(cs.b * cs.l * d));
      std::vector<double> scores(static_cast<std::size_t>(cs.l));
      for (int64_t b = 0; b < cs.b; ++b)
        for (int h = 0; h < cs.heads; ++h)
          for (int64_t i = 0; i < cs.l; ++i) {
            auto at = [&](int64_t token, int64_t part, int64_t e) {
              return static_cast<double>(p[(b * cs.l + token) * 3 * d + part * d + h * cs.head_dim + e]);
            };
            double max_score = -std::numeric_limits<double>::infinity(), sum = 0.0;
            for (int64_t j = 0; j < cs.l; ++j) {
              double s = 0.0;
              for (int64_t e = 0; e < cs.head_dim; ++e) s += at(i, 0, e) * at(j, 1, e);
              scores[static_cast<std::size_t>(j)] = s / std::sqrt(static_cast<double>(cs.head_dim));
              max_score = std::max(max_score, scores[static_cast<std::size_t>(j)]);
            }
            for (double& s : scores) sum += (s = std::exp(s - max_score));
            for (int64_t e = 0; e < cs.head_dim; ++e) {
              double acc = 0.0;
              for (int64_t j = 0; j < cs.l; ++j) acc += scores[static_cast<std::size_t>(j)] / sum * at(j, 2, e);
              expected[static_cast<std::size_t>((b * cs.l + i) * d + h * cs.head_dim + e)] = acc;
            }
          }
      CHECK(relative_error(y, expected) <= 1e-5);
    }
  }
  VISOPT_REQUIRE_ERROR(ref::self_attention(Tensor::zeros({1, 4, 30}), 4, Tensor::empty({1, 4, 10})),
                       "reference::self_attention: qkv has shape [1,4,30], whose D=10 is not a positive multiple of heads=4");
  VISOPT_REQUIRE_ERROR(ref::self_attention(Tensor::zeros({1, 4, 24}), 2, Tensor::empty({1, 4, 24})),
                       "reference::self_attention: output has shape [1,4,24], expected [1,4,8]");
}

TEST_CASE("patchify: hand-computed, and patchify + linear equals conv with kernel = stride = patch",
          "[reference]") {
  SECTION("hand: 4x4 image, 2x2 patches") {
    std::vector<float> v(16);
    for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
    const Tensor x = Tensor::from_vector({1, 1, 4, 4}, v);
    Tensor y = Tensor::empty({1, 4, 4});
    ref::patchify(x, 2, y);
    check_values(y, {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15});
  }
  SECTION("patch embedding two ways") {
    std::mt19937 rng(23);
    struct Case {
      int64_t n, c, h, w, d;
      int patch;
    };
    for (const Case& cs : {Case{2, 3, 8, 8, 5, 4}, Case{1, 3, 8, 12, 7, 4}, Case{2, 2, 10, 9, 3, 3},
                           Case{1, 3, 32, 32, 24, 16}}) {
      INFO(cs.c << "x" << cs.h << "x" << cs.w << ", patch " << cs.patch);
      const Tensor x = random_tensor({cs.n, cs.c, cs.h, cs.w}, rng);
      const Tensor w = random_tensor({cs.d, cs.c, cs.patch, cs.patch}, rng);
      const std::vector<float> bias = random_vector(cs.d, rng);
      const Conv2dGeometry g{.stride_h = cs.patch, .stride_w = cs.patch};
      const Shape conv_shape = visopt::nn::conv2d_output_shape(x.shape(), w.shape(), g);
      Tensor conv = Tensor::empty(conv_shape);
      ref::conv2d(x, w, bias.data(), g, conv, nullptr, Activation::none);

      const int64_t tokens = conv_shape[2] * conv_shape[3], row = cs.c * cs.patch * cs.patch;
      Tensor patches = Tensor::empty({cs.n, tokens, row});
      ref::patchify(x, cs.patch, patches);
      Tensor embedded = Tensor::empty({cs.n, tokens, cs.d});
      ref::linear(patches, w.reshaped({cs.d, row}), bias.data(), embedded, nullptr, Activation::none);
      // [N,D,gh,gw] flattened and transposed is [N, gh·gw, D].
      const float* cp = conv.data_as<float>();
      std::vector<double> expected;
      for (int64_t n = 0; n < cs.n; ++n)
        for (int64_t t = 0; t < tokens; ++t)
          for (int64_t e = 0; e < cs.d; ++e) expected.push_back(cp[(n * cs.d + e) * tokens + t]);
      CHECK(relative_error(embedded, expected) <= 1e-5);
    }
  }
  VISOPT_REQUIRE_ERROR(ref::patchify(Tensor::zeros({1, 3, 8, 8}), 4, Tensor::empty({1, 4, 16})),
                       "reference::patchify: output has shape [1,4,16], expected [1,4,48]");
  VISOPT_REQUIRE_ERROR(ref::patchify(Tensor::zeros({1, 3, 8, 8}), 16, Tensor::empty({1, 1, 768})),
                       "reference::patchify: input has shape [1,3,8,8], smaller than one 16x16 patch");
}
