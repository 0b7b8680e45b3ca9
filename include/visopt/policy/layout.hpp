#pragma once
// Layout axis: how activations are laid out between operations (NCHW, or NHWC "channels_last").

#include <string_view>

namespace visopt::layout {

struct layout_tag {};
struct nchw : layout_tag { static constexpr std::string_view name = "nchw"; };
struct nhwc : layout_tag { static constexpr std::string_view name = "nhwc"; };

}  // namespace visopt::layout
