#pragma once
// Execution axis: eager runs op by op with pooled buffers; graph_capture plans one arena by liveness,
// prepacks everything at compile() and, on GPUs, replays the whole forward as a CUDA Graph.

#include <string_view>

namespace visopt::execution {

struct execution_tag {};
struct eager : execution_tag {
  static constexpr std::string_view name = "eager";
  static constexpr bool static_plan = false;
};
struct graph_capture : execution_tag {
  static constexpr std::string_view name = "graph_capture";
  static constexpr bool static_plan = true;
};

}  // namespace visopt::execution
