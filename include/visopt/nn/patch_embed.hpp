#pragma once
// PatchEmbed: cuts the image into p×p patches, projects each to D (a conv with kernel = stride = p,
// computed as one GEMM), prepends the class token (and DeiT's distillation token) and adds the position
// embedding.

#include "../policy/policy.hpp"
#include "params.hpp"

namespace visopt::nn {

template <PolicyBundle P, class Exec>
class PatchEmbed {
 public:
  PatchEmbed(Exec& exec, const PatchEmbedParams& params) : embed_(exec.prepare_patch_embed(params)) {}

  /// images [N,3,H,W] -> tokens [N, T + (H/p)(W/p), D], T prefix tokens first
  Tensor forward(Exec& exec, const Tensor& images) const { return exec.patch_embed(embed_, images); }

 private:
  typename Exec::PatchEmbed embed_;
};

}  // namespace visopt::nn
