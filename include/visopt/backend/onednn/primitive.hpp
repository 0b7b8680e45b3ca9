#pragma once
// The pieces every oneDNN operation of the executor is built from: the Context (engine, stream,
// threads, one user-managed scratchpad, the census of primitives made), memory descriptors of visopt
// tensors, Step (a primitive created once with its memory objects, which run() only points at this
// call's buffers), the cache of Steps keyed by the layouts an operation was called with, and weights
// packed once.

#include <array>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_debug.h>

#include "../../core/env.hpp"
#include "../../core/tensor.hpp"
#include "check.hpp"

static_assert(DNNL_VERSION_MAJOR == 2,
              "visopt: the oneDNN backend is written against the oneDNN 2.x API (Debian 12 ships 2.6: operation "
              "descriptors come before primitive descriptors); build with oneDNN 2.x or turn VISOPT_WITH_ONEDNN off");

namespace visopt::backend::onednn {

using dnnl_dt = dnnl::memory::data_type;

inline dnnl_dt to_dnnl(DType t) {
  switch (t) {
    case DType::f32: return dnnl_dt::f32;
    case DType::f16: return dnnl_dt::f16;
    case DType::bf16: return dnnl_dt::bf16;
    case DType::s8: return dnnl_dt::s8;
    case DType::u8: return dnnl_dt::u8;
    case DType::e4m3: break;  // oneDNN 2.x has no FP8
  }
  return dnnl_dt::undef;
}

inline dnnl::memory::dims dims_of(const Shape& shape) { return dnnl::memory::dims(shape.begin(), shape.end()); }

/// A plain (strided) memory descriptor with the tensor's logical shape, strides and type.
inline dnnl::memory::desc describe(const Shape& shape, DType dtype, const Strides& strides) {
  return dnnl::memory::desc(dims_of(shape), to_dnnl(dtype),
                            dnnl::memory::dims(strides.begin(), strides.begin() + shape.rank()));
}
inline dnnl::memory::desc describe(const TensorView& t) { return describe(t.shape(), t.dtype(), t.strides()); }
inline dnnl::memory::desc describe(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::contiguous) {
  return describe(shape, dtype, strides_for(shape, format));
}

/// "bf16 [1,64,56,56] strides [200704,1,3584,64]" (or "blocked", for a layout oneDNN chose), for messages.
inline std::string to_string(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::string s = md.is_zero() ? std::string("none") : std::string(dnnl_dt2str(d.data_type)) + " [";
  if (md.is_zero()) return s;
  for (int i = 0; i < d.ndims; ++i) s += (i ? "," : "") + std::to_string(d.dims[i]);
  s += "]";
  if (d.format_kind == dnnl_blocked) {
    s += d.format_desc.blocking.inner_nblks > 0 ? " blocked" : " strides [";
    if (d.format_desc.blocking.inner_nblks == 0) {
      for (int i = 0; i < d.ndims; ++i) s += (i ? "," : "") + std::to_string(d.format_desc.blocking.strides[i]);
      s += "]";
    }
  } else if (d.format_kind == dnnl_format_kind_any) {
    s += " any";
  }
  return s;
}

/// What identifies one call's tensors for the Step caches: shape, strides and type (no allocation).
struct Layout {
  Shape shape;
  Strides strides{};
  DType dtype = DType::f32;
  Layout() = default;
  explicit Layout(const TensorView& t) : shape(t.shape()), strides(t.strides()), dtype(t.dtype()) {}
  friend bool operator==(const Layout&, const Layout&) = default;
};

/// The thread count visopt asks OpenMP (hence oneDNN) for: CompileOptions::num_threads when set,
/// else the environment variable VISOPT_NUM_THREADS, else 0 (OpenMP's default, OMP_NUM_THREADS).
inline int requested_threads(int option) {
  if (option > 0) return option;
  return env::num_threads().value_or(0);
}

/// The engine, stream, thread count and scratchpad that all primitives of one executor share.
/// Every primitive uses a user-managed scratchpad: one buffer, grown only when a primitive is made.
class Context {
 public:
  explicit Context(int num_threads)
      : threads_(requested_threads(num_threads) > 0 ? requested_threads(num_threads) : default_threads()),
        engine_(VISOPT_DNNL(dnnl::engine(dnnl::engine::kind::cpu, 0), "creating the CPU engine")),
        stream_(VISOPT_DNNL(dnnl::stream(engine_), "creating the CPU stream")) {
    apply_threads();
  }

  const dnnl::engine& engine() const { return engine_; }
  const dnnl::stream& stream() const { return stream_; }

  /// OpenMP's thread count belongs to the calling thread and another engine may have changed it:
  /// set it before each forward pass.
  void apply_threads() const { omp_set_num_threads(threads_); }
  int threads() const { return threads_; }

  /// Attributes every primitive starts from: the scratchpad is ours, not oneDNN's per-call one.
  dnnl::primitive_attr attributes() const {
    dnnl::primitive_attr attr;
    VISOPT_DNNL(attr.set_scratchpad_mode(dnnl::scratchpad_mode::user), "setting the user scratchpad mode");
    return attr;
  }

  void reserve_scratchpad(std::size_t bytes) {
    if (bytes <= scratchpad_bytes_) return;
    scratchpad_ = visopt::detail::allocate_storage(bytes, Device::cpu());
    scratchpad_bytes_ = bytes;
  }
  void* scratchpad() const { return scratchpad_.get(); }
  std::size_t scratchpad_bytes() const { return scratchpad_bytes_; }

  void wait() const { VISOPT_DNNL(dnnl_stream_wait(stream_.get()), "waiting for the CPU stream"); }

  /// What was made so far: primitives by kind and oneDNN implementation ("matmul brg:avx512_core_bf16")
  /// and weight tensors packed. Constant once every batch size has been seen: a structural check that
  /// run() makes no primitive and packs nothing (tests and report() read it).
  struct Census {
    std::map<std::string, int> implementations;
    int primitives = 0, weight_packs = 0;
    std::size_t packed_bytes = 0;
  };
  void count_primitive(const std::string& kind_and_implementation) {
    ++census_.implementations[kind_and_implementation];
    ++census_.primitives;
  }
  void count_weight_pack(std::size_t bytes) {
    ++census_.weight_packs;
    census_.packed_bytes += bytes;
  }
  const Census& census() const { return census_; }

 private:
  /// OpenMP's default (OMP_NUM_THREADS, else the cores), as it was before any engine changed it.
  static int default_threads() {
    static const int threads = omp_get_max_threads();
    return threads;
  }

  int threads_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::shared_ptr<void> scratchpad_;
  std::size_t scratchpad_bytes_ = 0;
  Census census_;
};

/// One primitive with the memory objects of its arguments, made once. Arguments are either bound
/// (weights, bias: their memory is fixed at creation) or per call: run() points those at the
/// call's buffers, in the order they were declared, and executes through the C API, so that the
/// call allocates nothing on visopt's side.
class Step {
 public:
  struct Arg {
    int id;
    dnnl::memory::desc desc;
    dnnl::memory bound{};  // empty: given per call
  };

  Step() = default;
  Step(Context& context, const dnnl::primitive_desc_base& pd, const std::vector<Arg>& args, std::string what)
      : what_(std::move(what)) {
    primitive_ = VISOPT_DNNL(dnnl::primitive(pd.get()), what_, " (", pd.impl_info_str(), ")");
    implementation_ = pd.impl_info_str();
    context.count_primitive(
        std::string(dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(pd.get_kind()))) + " " + implementation_);
    for (const Arg& arg : args) {
      dnnl::memory memory = arg.bound ? arg.bound
                                      : VISOPT_DNNL(dnnl::memory(arg.desc, context.engine(), DNNL_MEMORY_NONE), what_,
                                                    ": memory for argument ", arg.id, " ", to_string(arg.desc));
      if (!arg.bound) per_call_.push_back(args_.size());
      memories_.push_back(memory);
      args_.push_back({arg.id, memory.get()});
    }
    const dnnl::memory::desc scratch = pd.scratchpad_desc();
    scratchpad_bytes_ = scratch.get_size();
    if (scratchpad_bytes_ > 0) {
      context.reserve_scratchpad(scratchpad_bytes_);
      dnnl::memory memory =
          VISOPT_DNNL(dnnl::memory(scratch, context.engine(), DNNL_MEMORY_NONE), what_, ": scratchpad memory");
      scratchpad_index_ = args_.size();
      memories_.push_back(memory);
      args_.push_back({DNNL_ARG_SCRATCHPAD, memory.get()});
    }
  }

  bool defined() const { return static_cast<bool>(primitive_); }
  const std::string& implementation() const { return implementation_; }

  /// Runs the primitive on `pointers`, one per per-call argument in declaration order.
  void run(const Context& context, std::initializer_list<const void*> pointers) const {
    require(pointers.size() == per_call_.size(), "onednn: ", what_, " needs ", per_call_.size(), " buffers, got ",
            pointers.size(), " (internal error)");
    std::size_t i = 0;
    for (const void* pointer : pointers) {
      dnnl_memory_t memory = args_[per_call_[i++]].memory;
      VISOPT_DNNL(dnnl_memory_set_data_handle(memory, const_cast<void*>(pointer)), what_);
    }
    if (scratchpad_bytes_ > 0) {
      VISOPT_DNNL(dnnl_memory_set_data_handle(args_[scratchpad_index_].memory, context.scratchpad()), what_,
                  ": binding the scratchpad");
    }
    VISOPT_DNNL(dnnl_primitive_execute(primitive_.get(), context.stream().get(), static_cast<int>(args_.size()),
                                       args_.data()),
                what_, " (", implementation_, ")");
  }

 private:
  dnnl::primitive primitive_;
  std::vector<dnnl::memory> memories_;  // owners of the handles in args_
  std::vector<dnnl_exec_arg_t> args_;
  std::vector<std::size_t> per_call_;
  std::size_t scratchpad_bytes_ = 0, scratchpad_index_ = 0;
  std::string what_, implementation_;
};

/// The key of an operation on N tensors.
template <std::size_t N>
using Layouts = std::array<Layout, N>;

/// Weights reordered once into the layout a primitive chose (format_tag::any), possibly converted
/// to bf16. A later primitive that chooses the same layout for the same source shares the copy.
class PackedWeights {
 public:
  /// The packed copy of `source` (described by `source_desc`) in layout `target`.
  dnnl::memory get(Context& context, const dnnl::memory::desc& source_desc, const void* source,
                          const dnnl::memory::desc& target, const std::string& what) {
    for (const auto& packed : copies_) {
      if (packed.source == source && packed.memory.get_desc() == target) return packed.memory;
    }
    dnnl::memory from =
        VISOPT_DNNL(dnnl::memory(source_desc, context.engine(), const_cast<void*>(source)), what, ": weights ",
                    to_string(source_desc));
    dnnl::memory to = VISOPT_DNNL(dnnl::memory(target, context.engine()), what, ": packed weights ", to_string(target));
    VISOPT_DNNL(dnnl::reorder(from, to).execute(context.stream(), from, to), what, ": reordering weights ",
                to_string(source_desc), " to ", to_string(target));
    context.wait();
    context.count_weight_pack(target.get_size());
    copies_.push_back({source, to});
    return to;
  }

 private:
  struct Copy {
    const void* source;
    dnnl::memory memory;
  };
  std::vector<Copy> copies_;
};

/// The arguments of a primitive with prepacked weights (convolution, matmul): src and dst given per
/// call, the packed weights and the optional f32 bias (`bias` null: none) bound at creation.
inline std::vector<Step::Arg> weighted_arguments(Context& context, const dnnl::memory::desc& src,
                                                 const dnnl::memory& weights, const dnnl::memory::desc& bias_desc,
                                                 const void* bias, const dnnl::memory::desc& dst,
                                                 const std::string& what) {
  std::vector<Step::Arg> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights.get_desc(), weights}};
  if (bias != nullptr) {
    args.push_back({DNNL_ARG_BIAS, bias_desc,
                    VISOPT_DNNL(dnnl::memory(bias_desc, context.engine(), const_cast<void*>(bias)), what,
                                ": bias memory ", to_string(bias_desc))});
  }
  args.push_back({DNNL_ARG_DST, dst});
  return args;
}

}  // namespace visopt::backend::onednn
