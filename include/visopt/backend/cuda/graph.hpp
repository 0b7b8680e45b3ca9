#pragma once
// CUDA Graph capture for execution::graph_capture: per batch size, one eager forward settles
// algorithms, workspaces and pool blocks; a second forward is captured into a graph and instantiated.
// run() then copies the images in, launches the graph, and copies the logits out: no allocation,
// no search and one synchronisation per call. Graphs of different batch sizes may share pool blocks
// as scratch because they replay one after another on the same stream.

#include <map>
#include <vector>

#include "context.hpp"

namespace visopt::backend::cuda {

namespace detail {
inline void destroy_graph(cudaGraph_t g) noexcept { (void)cudaGraphDestroy(g); }
inline void destroy_graph_exec(cudaGraphExec_t g) noexcept { (void)cudaGraphExecDestroy(g); }
}  // namespace detail

class GraphCache {
 public:
  /// `forward(staged)` maps device f32 NCHW images to device f32 logits using only `context`'s stream.
  template <class Forward>
  Tensor run(Context& context, const TensorView& images, Forward&& forward) {
    std::vector<std::int64_t> key(images.shape().begin(), images.shape().end());
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, capture(context, images, forward)).first;
    Entry& entry = it->second;
    const cudaStream_t stream = context.stream();
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(entry.staged.data(), images.data(), images.nbytes(),
                                      images.device().is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream));
    VISOPT_CUDA_CHECK(cudaGraphLaunch(entry.exec.get(), stream));
    if (images.device().is_cpu()) {
      VISOPT_CUDA_CHECK(cudaMemcpyAsync(entry.pinned.data(), entry.logits.data(), entry.logits.nbytes(), cudaMemcpyDeviceToHost, stream));
      VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
      Tensor result = Tensor::empty(entry.logits.shape());
      std::memcpy(result.data(), entry.pinned.data(), entry.logits.nbytes());
      return result;
    }
    Tensor result = context.results().allocate(entry.logits.shape(), DType::f32);
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(result.data(), entry.logits.data(), entry.logits.nbytes(), cudaMemcpyDeviceToDevice, stream));
    VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));
    return result;
  }

  int captured() const { return static_cast<int>(entries_.size()); }

 private:
  struct Entry {
    Tensor staged, logits;  // device buffers the graph reads and writes; kept for its lifetime
    Tensor pinned;          // page-locked host copy of the logits
    std::unique_ptr<CUgraphExec_st, decltype(&detail::destroy_graph_exec)> exec{nullptr, &detail::destroy_graph_exec};
  };

  template <class Forward>
  static Entry capture(Context& context, const TensorView& images, Forward& forward) {
    const cudaStream_t stream = context.stream();
    Entry entry;
    entry.staged = context.allocate(images.shape(), DType::f32);
    VISOPT_CUDA_CHECK(cudaMemcpyAsync(entry.staged.data(), images.data(), images.nbytes(),
                                      images.device().is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream));
    { const Tensor settle = forward(entry.staged); }  // eager: tunes, sizes workspaces, fills the pool
    VISOPT_CUDA_CHECK(cudaStreamSynchronize(stream));

    VISOPT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      entry.logits = forward(entry.staged);
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
    VISOPT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    entry.exec.reset(exec);
    entry.pinned = pinned_host_tensor(entry.logits.shape());
    return entry;
  }

  std::map<std::vector<std::int64_t>, Entry> entries_;
};

}  // namespace visopt::backend::cuda
