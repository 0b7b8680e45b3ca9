#pragma once
// The lifecycle's capture stage for execution::graph_capture: once an input shape's plan is made (its
// planning forward chose every algorithm, sized the workspaces and filled the pool), one more forward
// over that plan is captured into a CUDA Graph, instantiated and uploaded. The graph lives in the batch
// plan (services/batch_plan.hpp); run() copies the images in, launches it and copies the logits out: no
// allocation, no search and one synchronisation per call. Graphs of different batch sizes may share
// pool blocks as scratch because they replay one after another on the same stream.

#include <cstring>
#include <memory>

#include "context.hpp"

namespace visopt::backend::cuda {

namespace detail {
inline void destroy_graph(cudaGraph_t g) noexcept { (void)cudaGraphDestroy(g); }
inline void destroy_graph_exec(cudaGraphExec_t g) noexcept { (void)cudaGraphExecDestroy(g); }
}  // namespace detail

/// A forward captured for one input shape, with the device buffers it reads and writes.
struct CapturedForward {
  Tensor staged, logits;  // device buffers the graph reads and writes; kept for its lifetime
  Tensor pinned;          // page-locked host copy of the logits
  std::unique_ptr<CUgraphExec_st, decltype(&detail::destroy_graph_exec)> exec{nullptr, &detail::destroy_graph_exec};
  double capture_ms = 0;

  bool captured() const { return exec != nullptr; }
};

/// Captures `forward(staged)` (device f32 NCHW images -> device f32 logits, on `context`'s stream only)
/// for images of `images`' shape. The caller has planned that shape: nothing is chosen or tuned here.
template <class Forward>
CapturedForward capture_forward(Context& context, const TensorView& images, Forward&& forward) {
  const cudaStream_t stream = context.stream();
  CapturedForward captured;
  captured.staged = context.allocate(images.shape(), DType::f32);
  VISOPT_CUDA_CHECK(cudaMemcpyAsync(captured.staged.data(), images.data(), images.nbytes(),
                                    images.device().is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream));
  VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  VISOPT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    captured.logits = forward(captured.staged);
  } catch (...) {
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(stream, &broken);
    if (broken) detail::destroy_graph(broken);
    throw;
  }
  cudaGraph_t graph = nullptr;
  VISOPT_CUDA_CHECK(cudaStreamEndCapture(stream, &graph), "capturing the forward pass for batch shape " + images.shape().to_string());
  std::unique_ptr<CUgraph_st, decltype(&detail::destroy_graph)> owned_graph(graph, &detail::destroy_graph);
  cudaGraphExec_t exec = nullptr;
  VISOPT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0), "instantiating the graph for batch shape " + images.shape().to_string());
  captured.exec.reset(exec);
  // Uploaded now, so that the first run() does not pay for moving the graph to the device.
  VISOPT_CUDA_CHECK(cudaGraphUpload(exec, stream), "uploading the graph for batch shape " + images.shape().to_string());
  captured.pinned = pinned_host_tensor(captured.logits.shape());
  VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return captured;
}

/// Runs a captured forward on `images` (host, or device f32 NCHW on the engine's GPU); returns f32
/// logits on the images' device.
inline Tensor replay(Context& context, const CapturedForward& captured, const TensorView& images) {
  const cudaStream_t stream = context.stream();
  VISOPT_CUDA_CHECK(cudaMemcpyAsync(captured.staged.data(), images.data(), images.nbytes(),
                                    images.device().is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream));
  VISOPT_CUDA_CHECK(cudaGraphLaunch(captured.exec.get(), stream));
  if (images.device().is_cpu()) {
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(captured.pinned.data(), captured.logits.data(), captured.logits.nbytes(),
                                      cudaMemcpyDeviceToHost, stream));
    VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
    Tensor result = Tensor::empty(captured.logits.shape());
    std::memcpy(result.data(), captured.pinned.data(), captured.logits.nbytes());
    return result;
  }
  Tensor result = context.results().allocate(captured.logits.shape(), DType::f32);
  VISOPT_CUDA_CHECK(cudaMemcpyAsync(result.data(), captured.logits.data(), captured.logits.nbytes(), cudaMemcpyDeviceToDevice,
                                    stream));
  VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return result;
}

}  // namespace visopt::backend::cuda
