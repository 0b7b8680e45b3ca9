#pragma once
// The CUDA backend as plain C++ sees it: compile<Level, backend::Cuda>() calls compile_engine<Level>,
// declared here and defined in runtime/cuda_engines.cuh, which only nvcc compiles. A program's .cpp
// files need no CUDA headers; one .cu file (or CMake's visopt_add_cuda_engines) instantiates the levels
// the program runs, and the linker joins the two (docs/backends.md, "CUDA from plain C++").

#include "../policy/policy.hpp"
#include "engine.hpp"
#include "../services/options.hpp"

namespace visopt::backend::cuda {

/// Compiles `model` (any registered model type) for Level on the GPU (CompileOptions::device). Defined in
/// cuda_engines.cuh; a program that calls it for a Level nvcc did not instantiate fails to link, naming
/// compile_engine<Level>.
template <PolicyBundle Level, class Model>
Engine<Level, Cuda> compile_engine(Model model, runtime::CompileOptions options);

}  // namespace visopt::backend::cuda
