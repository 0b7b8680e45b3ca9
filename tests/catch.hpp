#pragma once
// The one way tests include Catch2: v3 where it exists (the GPU machine), else v2 (Debian 12).
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#define VISOPT_CATCH_CONTAINS Catch::Matchers::ContainsSubstring
#else
#include <catch2/catch.hpp>
#define VISOPT_CATCH_CONTAINS Catch::Matchers::Contains
#endif

/// Checks that `expression` throws visopt::Error whose message contains `fragment`.
#define VISOPT_REQUIRE_ERROR(expression, fragment) REQUIRE_THROWS_WITH(expression, VISOPT_CATCH_CONTAINS(fragment))
