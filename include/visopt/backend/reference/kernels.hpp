#pragma once
// The reference backend's compute kernels: fp32, NCHW, host memory, Eigen + OpenMP. Free functions in
// visopt::backend::reference that write into outputs the caller allocated; only includes.

#include "kernels/attention.hpp"
#include "kernels/batch_norm.hpp"
#include "kernels/common.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/layer_norm.hpp"
#include "kernels/linear.hpp"
#include "kernels/patchify.hpp"
#include "kernels/pooling.hpp"
#include "kernels/softmax.hpp"
