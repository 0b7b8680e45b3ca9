#pragma once
// What this CPU offers oneDNN, decided at run time (STYLE 5: the types decide what is asked for, the
// machine decides what can be done): the instruction set oneDNN will use, and whether bf16 runs
// natively (avx512_bf16 or AMX). ONEDNN_MAX_CPU_ISA lowers it, which is how tests reach the fallback.

#include <string>
#include <string_view>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

namespace visopt::backend::onednn {

struct CpuFeatures {
  dnnl::cpu_isa isa = dnnl::cpu_isa::all;
  bool bf16 = false;  // native bf16 dot products: avx512_core_bf16 or AMX
  bool amx = false;
  std::string isa_name;  // "avx512_core_bf16"
  /// Why bf16 cannot run natively; empty when it can.
  std::string bf16_missing_reason;
};

inline std::string_view cpu_isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::all: return "all";
  }
  return "unknown isa";
}

/// The effective ISA of this process (oneDNN fixes it at its first use; ONEDNN_MAX_CPU_ISA caps it).
inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  f.isa = dnnl::get_effective_cpu_isa();
  f.isa_name = std::string(cpu_isa_name(f.isa));
  f.amx = f.isa == dnnl::cpu_isa::avx512_core_amx;
  f.bf16 = f.isa == dnnl::cpu_isa::avx512_core_bf16 || f.amx;
  if (!f.bf16) {
    f.bf16_missing_reason = "this CPU's effective oneDNN ISA is " + f.isa_name +
                            ", without avx512_bf16 or AMX (bf16 would be emulated, slower than fp32)";
  }
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_cpu_features();
  return features;
}

}  // namespace visopt::backend::onednn
