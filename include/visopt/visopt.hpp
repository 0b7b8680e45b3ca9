#pragma once
// The umbrella header: include this and nothing else. It only includes; backends whose libraries
// were not found are left out (their tags still exist, so naming one is a clear compile error). CUDA
// engines are callable from plain C++ (runtime/cuda_engine.hpp); under nvcc their code comes too.
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "policy/levels.hpp"
#include "policy/policy.hpp"
#include "io/safetensors.hpp"
#include "nn/weights.hpp"
#include "models/resnet.hpp"
#include "models/vit.hpp"
#include "models/summary.hpp"
#include "backend/backends.hpp"
#include "backend/reference/executor.hpp"
#if defined(VISOPT_HAS_ONEDNN)
#include "backend/onednn/executor.hpp"
#endif
#if defined(VISOPT_HAS_CUDA) && defined(__CUDACC__)
#include "runtime/cuda_engines.cuh"
#endif
#include "runtime/compile.hpp"
#include "runtime/calibrate.hpp"
#include "runtime/dispatch.hpp"
#include "runtime/engine.hpp"
#include "services/report.hpp"
