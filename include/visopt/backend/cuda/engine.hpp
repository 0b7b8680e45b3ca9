#pragma once
// The CUDA backend as plain C++ sees it: compile<Level, backend::Cuda>() calls compile_engine<Level>,
// declared here and defined in backend/cuda/engines.cuh, which only nvcc compiles. A program's .cpp
// files need no CUDA headers; one .cu file (or CMake's visopt_add_cuda_engines) instantiates the levels
// the program runs, and the linker joins the two (docs/backends.md, "CUDA from plain C++").

#include "../../models/resnet.hpp"
#include "../../models/vit.hpp"
#include "../../policy/policy.hpp"
#include "../../runtime/engine.hpp"
#include "../../runtime/options.hpp"

namespace visopt::backend::cuda {

/// Compiles `model` for Level on the GPU (CompileOptions::device). Defined in engines.cuh; a program that
/// calls it for a Level nvcc did not instantiate fails to link, naming compile_engine<Level>.
template <PolicyBundle Level>
Engine<Level, Cuda> compile_engine(models::ResNet model, runtime::CompileOptions options);
template <PolicyBundle Level>
Engine<Level, Cuda> compile_engine(const models::ViT& model, runtime::CompileOptions options);

}  // namespace visopt::backend::cuda
