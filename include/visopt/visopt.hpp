#pragma once
// The umbrella header: include this and nothing else. It only includes.
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "policy/levels.hpp"
#include "policy/policy.hpp"
