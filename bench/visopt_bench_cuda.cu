// visopt_bench built by nvcc: the same program as visopt_bench.cpp, with the cuda backend (GPU input,
// CUDA-event timing, cudaMemGetInfo memory) and the cuBLASLt GEMM ceiling compiled in.
#include "visopt_bench.cpp"
