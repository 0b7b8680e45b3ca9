// Configuration from the environment (docs/configuration.md): VISOPT_* fills what CompileOptions leave
// unset, explicit options win, a malformed value names the variable; strings become types in one
// dispatch whose errors list the valid values; report() says where each setting came from.

#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>
#include <visopt/services/algorithm_cache.hpp>
#include <visopt/visopt.hpp>

#include "catch.hpp"
#include "report_json.hpp"

using namespace visopt;

namespace {

/// Sets an environment variable for one scope, then restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    had_ = std::getenv(name) != nullptr;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

const runtime::Setting& setting(const std::vector<runtime::Setting>& settings, const std::string& name) {
  for (const auto& s : settings) {
    if (s.name == name) return s;
  }
  FAIL("no setting " << name);
  return settings.front();
}

}  // namespace

TEST_CASE("resolve: defaults, then the environment, then explicit options", "[environment]") {
  const ScopedEnv a("VISOPT_WARMUP", nullptr), b("VISOPT_STRICT", nullptr), c("VISOPT_DEVICE", nullptr),
      d("VISOPT_NUM_THREADS", nullptr), e("VISOPT_CACHE_DIR", nullptr);
  std::vector<runtime::Setting> settings;
  CompileOptions resolved = runtime::resolve({}, &settings);
  CHECK(resolved.warmup == 1);
  CHECK(resolved.strict == false);
  CHECK(resolved.device == 0);
  CHECK(resolved.num_threads == 0);
  CHECK(resolved.cache_dir.empty());
  CHECK(setting(settings, "warmup").source == "default");

  const ScopedEnv w("VISOPT_WARMUP", "3"), s("VISOPT_STRICT", "yes"), g("VISOPT_DEVICE", "2"), t("VISOPT_NUM_THREADS", "2"),
      cache("VISOPT_CACHE_DIR", "/tmp/visopt-test-cache");
  settings.clear();
  resolved = runtime::resolve({}, &settings);
  CHECK(resolved.warmup == 3);
  CHECK(resolved.strict == true);
  CHECK(resolved.device == 2);
  CHECK(resolved.num_threads == 2);
  CHECK(resolved.cache_dir == "/tmp/visopt-test-cache");
  CHECK(setting(settings, "warmup").source == "VISOPT_WARMUP");
  CHECK(setting(settings, "strict").value == "true");
  CHECK(runtime::cache_directory("") == "/tmp/visopt-test-cache");

  // Explicit options win, even where they equal the default.
  settings.clear();
  resolved = runtime::resolve({.num_threads = 1, .cache_dir = "/x", .warmup = 0, .strict = false, .device = 0}, &settings);
  CHECK(resolved.warmup == 0);
  CHECK(resolved.strict == false);
  CHECK(resolved.device == 0);
  CHECK(resolved.num_threads == 1);
  CHECK(resolved.cache_dir == "/x");
  CHECK(setting(settings, "strict").source == "CompileOptions");
  CHECK(runtime::cache_directory("/x") == "/x");
}

TEST_CASE("a malformed VISOPT_* value is an error naming the variable and what it accepts", "[environment]") {
  {
    const ScopedEnv w("VISOPT_WARMUP", "many");
    VISOPT_REQUIRE_ERROR(runtime::resolve({}), "VISOPT_WARMUP is 'many', expected a whole number from 0 to 1000");
    CHECK(runtime::resolve({.warmup = 2}).warmup == 2);  // an overridden variable is not read
  }
  {
    const ScopedEnv w("VISOPT_WARMUP", "-1");
    VISOPT_REQUIRE_ERROR(runtime::resolve({}), "VISOPT_WARMUP is '-1'");
  }
  {
    const ScopedEnv s("VISOPT_STRICT", "maybe");
    VISOPT_REQUIRE_ERROR(runtime::resolve({}), "VISOPT_STRICT is 'maybe', expected one of 1, 0, true, false");
  }
  {
    const ScopedEnv t("VISOPT_NUM_THREADS", "0");
    VISOPT_REQUIRE_ERROR(runtime::resolve({}), "VISOPT_NUM_THREADS is '0', expected a whole number from 1 to 4096");
  }
  {
    const ScopedEnv t("VISOPT_DEVICE", "1x");
    VISOPT_REQUIRE_ERROR(runtime::resolve({}), "VISOPT_DEVICE is '1x'");
  }
  VISOPT_REQUIRE_ERROR((compile<O0, backend::Reference>(models::resnet18(models::RandomWeights{}),
                                                        {.max_batch = 2, .image_size = 32, .warmup_batches = {1, 3}})),
                       "CompileOptions::warmup_batches holds 3, must be within 1..max_batch (2)");
  {  // compile() reads the environment too
    const ScopedEnv w("VISOPT_WARMUP", "often");
    VISOPT_REQUIRE_ERROR((compile<O0, backend::Reference>(models::resnet18(models::RandomWeights{}), {.image_size = 32})),
                         "VISOPT_WARMUP is 'often'");
  }
}

TEST_CASE("compile() takes VISOPT_WARMUP unless the options set warmup, and the report says which", "[environment]") {
  const auto model = models::resnet18(models::RandomWeights{1});
  const ScopedEnv w("VISOPT_WARMUP", "0");
  auto cold = compile<O0, backend::Reference>(model, {.image_size = 32});
  CHECK(cold.report().activation_bytes == 0);  // no warm-up ran: nothing reserved yet
  CHECK(cold.report().json()["settings"]["warmup"]["source"] == "VISOPT_WARMUP");
  auto warm = compile<O0, backend::Reference>(model, {.image_size = 32, .warmup = 1});
  CHECK(warm.report().activation_bytes > 0);
  CHECK(warm.report().json()["settings"]["warmup"]["source"] == "CompileOptions");
}

TEST_CASE("level and backend names: one dispatch, VISOPT_LEVEL/VISOPT_BACKEND as defaults, valid values listed",
          "[environment][dispatch]") {
  const ScopedEnv l("VISOPT_LEVEL", nullptr), b("VISOPT_BACKEND", nullptr);
  CHECK(choose_level("", "O1") == "O1");
  CHECK(choose_backend("", "reference") == "reference");
  {
    const ScopedEnv level("VISOPT_LEVEL", "O0"), backend_name("VISOPT_BACKEND", "reference");
    CHECK(choose_level("", "O1") == "O0");
    CHECK(choose_level("O1", "O3") == "O1");  // the command line wins
    CHECK(choose_backend("", "onednn") == "reference");
  }
  {
    const ScopedEnv level("VISOPT_LEVEL", "O9");
    VISOPT_REQUIRE_ERROR(choose_level(""), "environment variable VISOPT_LEVEL: level 'O9' is not one of O0, O1, O2, O3, O4");
    CHECK(choose_level("O2") == "O2");
  }
  {
    const ScopedEnv backend_name("VISOPT_BACKEND", "tpu");
    VISOPT_REQUIRE_ERROR(choose_backend(""), "environment variable VISOPT_BACKEND: backend 'tpu' is not one of those built here: reference");
  }
  VISOPT_REQUIRE_ERROR(choose_level("o2"), "level 'o2' is not one of O0, O1, O2, O3, O4");

  // The dispatch hands the matching types to the callable, and refuses a pair the backend cannot run.
  CHECK(with_level_and_backend("O1", "reference", [](auto level, auto backend) {
          return std::string(decltype(level)::name) + " " + std::string(decltype(backend)::name);
        }) == "O1 reference");
  VISOPT_REQUIRE_ERROR(with_level_and_backend("O2", "reference", [](auto, auto) { return 0; }),
                       "backend 'reference' cannot run level O2");
  VISOPT_REQUIRE_ERROR(with_level_and_backend("O4", "reference", [](auto, auto) { return 0; }),
                       "precision::quantized, O4) runs on backend::OneDnn (int8) or backend::Cuda (fp8)");
}

TEST_CASE("the 8-bit rules: int8 on oneDNN, FP8 on the GPU, both with fused epilogues; none on the reference", "[environment]") {
  // The rules hold in every build (the tags exist without their libraries); compile() static_asserts them.
  STATIC_REQUIRE(backend::OneDnn::can_implement<O4>().ok);
  STATIC_REQUIRE(backend::OneDnn::lower<O4>().int8);
  STATIC_REQUIRE(!backend::OneDnn::lower<O3>().int8);
  STATIC_REQUIRE(!backend::OneDnn::can_implement<O4::with<fusion::none>>().ok);
  CHECK(std::string(backend::OneDnn::can_implement<O4::with<fusion::fold_bn>>().reason).find("needs fusion::epilogue") !=
        std::string::npos);
  STATIC_REQUIRE(!backend::OneDnn::can_implement<O3::with<precision::fp8>>().ok);
  CHECK(std::string(backend::OneDnn::can_implement<O3::with<precision::fp8>>().reason).find("has no FP8") != std::string::npos);
  // The GPU's quantized format is FP8: O4 lowers to e4m3 linears with fp16 elsewhere.
  STATIC_REQUIRE(backend::Cuda::can_implement<O4>().ok);
  STATIC_REQUIRE(backend::Cuda::can_implement<O3::with<precision::fp8>>().ok);
  STATIC_REQUIRE(backend::Cuda::lower<O4>().fp8);
  STATIC_REQUIRE(!backend::Cuda::lower<O4>().int8);
  STATIC_REQUIRE(backend::Cuda::lower<O4>().dtype == DType::f16);
  STATIC_REQUIRE(!backend::Cuda::lower<O3>().fp8);
  CHECK(std::string(backend::Cuda::can_implement<O3::with<precision::int8>>().reason).find("FP8 (e4m3), not int8") !=
        std::string::npos);
  CHECK(std::string(backend::Cuda::can_implement<O4::with<fusion::fold_bn>>().reason).find("needs fusion::epilogue") !=
        std::string::npos);
  STATIC_REQUIRE(!backend::Reference::can_implement<O1::with<precision::int8>>().ok);
}

TEST_CASE("reference report(): JSON with level, backend, device, precision, optimisations, algorithms, memory, "
          "compile time and cache", "[environment][report]") {
  auto engine = compile<O1, backend::Reference>(models::resnet18(models::RandomWeights{5}), {.image_size = 32});
  const nlohmann::json j = testing::check_report_json(engine.report().json().dump());
  CHECK(j["level"] == "O1");
  CHECK(j["backend"] == "reference");
  CHECK(j["compute_precision"] == "fp32");
  CHECK(j["algorithms"]["convolution: im2col + Eigen GEMM"] == 20);  // resnet18: 17 convs + 3 downsampling shortcuts
  CHECK(j["algorithms"]["matmul: Eigen GEMM"] == 1);
  bool fold_bn = false;
  for (const auto& o : j["optimizations"]) fold_bn = fold_bn || (o["name"] == "fold_bn" && o["applied"] == true);
  CHECK(fold_bn);
  CHECK_THAT(engine.report().text(), VISOPT_CATCH_CONTAINS("algorithm cache 0 hits / 0 misses"));
}
