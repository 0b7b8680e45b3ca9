#pragma once
// One plan per batch size: what a backend decided for each operation of one forward pass at one input
// shape (a cuDNN engine, a cuBLASLt algorithm, oneDNN primitives), kept in the order the forward runs
// them, and what it keeps to replay the whole pass (a captured CUDA Graph). This is the lifecycle's
// plan stage (docs/architecture.md, "Lifecycle"): compile() plans max_batch and each warmup_batches
// size, run() replays a plan step by step (or its graph), and plans an input shape it has not seen.
//
// Use: begin(input) -> step() for each operation -> end(). The first forward of an input shape is its
// planning forward: each step() makes what its operation needs (an operation of the same owner and key
// met again in the same pass shares it). Every later forward takes the steps back in order; a forward
// that asks for a different operation than the plan holds is an error, not a silent re-plan.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "report.hpp"

namespace visopt::runtime {

template <class Replay>
class BatchPlans;

/// The plan of one input shape. `Replay` is what a backend keeps to replay the whole forward at once
/// (CUDA: the captured graph and its buffers); std::monostate where it replays step by step.
template <class Replay = std::monostate>
class BatchPlan {
 public:
  explicit BatchPlan(Shape input) : input_(std::move(input)) {}
  BatchPlan(const BatchPlan&) = delete;
  BatchPlan& operator=(const BatchPlan&) = delete;

  const Shape& input() const { return input_; }
  /// Whether its planning forward completed.
  bool planned() const { return planned_; }
  /// Operations of the forward that have a step, in the order they run.
  std::size_t operations() const { return order_.size(); }
  /// Steps made (operations of the same owner and key share one).
  std::size_t steps() const { return made_.size(); }
  /// Milliseconds the planning forward took (choosing, timing and building every step), from
  /// BatchPlans::begin to end.
  double plan_ms = 0;
  /// The backend's whole-forward replay, set by its capture stage.
  Replay replay{};

  /// The step of `owner` (the operation object that makes it) for `key` (what it is called with).
  /// In the planning forward it is made by `make()` unless this pass already made one for the same
  /// owner and key; afterwards it is the next step in order, checked to be `owner`'s for `key`.
  template <class Step, class Key, class Make>
  Step& step(const void* owner, const Key& key, Make&& make) {
    if (!planned_) {
      for (std::size_t i = 0; i < made_.size(); ++i) {
        if (made_[i].template matches<Step>(owner, key)) {
          order_.push_back(i);
          return *static_cast<Step*>(made_[i].step.get());
        }
      }
      made_.push_back(Made::of(owner, key, std::make_shared<Step>(make())));
      order_.push_back(made_.size() - 1);
      return *static_cast<Step*>(made_.back().step.get());
    }
    if (cursor_ >= order_.size() || !made_[order_[cursor_]].template matches<Step>(owner, key)) {
      fail(visopt::detail::concat("plan for input ", input_, ": operation ", cursor_ + 1, " of the forward is not the one its "
                                  "planning forward ran there (", order_.size(), " planned); the network's forward must "
                                  "call the same operations in the same order for one input shape"));
    }
    return *static_cast<Step*>(made_[order_[cursor_++]].step.get());
  }

  /// What several steps of this plan share (a cuDNN execution plan that two convolutions of equal shapes
  /// both run): made by `make()` the first time `key` is asked for in the planning forward, the same
  /// object afterwards. Shared resources take no place in the forward's order.
  template <class T, class Key, class Make>
  std::shared_ptr<T> shared(const Key& key, Make&& make) {
    require(!planned_, "plan for input ", input_, ": shared resources are made in the planning forward only");
    for (const Made& m : shared_) {
      if (m.template matches<T>(nullptr, key)) return std::static_pointer_cast<T>(m.step);
    }
    std::shared_ptr<T> made = make();
    shared_.push_back(Made::of(nullptr, key, made));
    return made;
  }

  /// Calls f(owner, const Step&) for each step of type Step made, in the order they were made.
  template <class Step, class F>
  void for_each(F&& f) const {
    for (const Made& m : made_) {
      if (*m.type == typeid(Step)) f(m.owner, *static_cast<const Step*>(m.step.get()));
    }
  }

 private:
  friend class BatchPlans<Replay>;
  /// A step or shared resource with its owner (null for shared ones) and key, both type-erased.
  struct Made {
    const void* owner = nullptr;
    const std::type_info* type = nullptr;      // of the step
    const std::type_info* key_type = nullptr;
    std::shared_ptr<const void> key;
    bool (*same_key)(const void*, const void*) = nullptr;
    std::shared_ptr<void> step;

    template <class T, class Key>
    static Made of(const void* owner, const Key& key, std::shared_ptr<T> step) {
      return {owner, &typeid(T), &typeid(Key), std::make_shared<Key>(key),
              [](const void* a, const void* b) { return *static_cast<const Key*>(a) == *static_cast<const Key*>(b); },
              std::move(step)};
    }
    template <class T, class Key>
    bool matches(const void* o, const Key& k) const {
      return owner == o && *type == typeid(T) && *key_type == typeid(Key) && same_key(key.get(), &k);
    }
  };

  Shape input_;
  bool planned_ = false;
  std::vector<Made> made_;
  std::vector<Made> shared_;        // what steps share, by key (BatchPlan::shared)
  std::vector<std::size_t> order_;  // indices into made_, one per operation in forward order
  std::size_t cursor_ = 0;          // the next operation of a planned forward
  std::chrono::steady_clock::time_point planning_started_;
};

/// Every plan an executor made, one per input shape (batch size; ResNet's image size too), and the
/// forward running now.
template <class Replay = std::monostate>
class BatchPlans {
 public:
  using Plan = BatchPlan<Replay>;

  /// The planned plan of `input`, or null.
  Plan* find(const Shape& input) {
    for (auto& p : plans_) {
      if (p->input() == input && p->planned()) return p.get();
    }
    return nullptr;
  }

  /// Opens a forward over the plan of `input`: its planning forward when there is none yet.
  Plan& begin(const Shape& input) {
    require(active_ == nullptr, "BatchPlans::begin(", input, ") inside the forward of ", active_ ? active_->input() : Shape{});
    Plan* plan = find(input);
    if (plan == nullptr) {
      std::erase_if(plans_, [&](const auto& p) { return p->input() == input; });  // a planning forward that failed
      plans_.push_back(std::make_unique<Plan>(input));
      plan = plans_.back().get();
      plan->planning_started_ = std::chrono::steady_clock::now();
    }
    plan->cursor_ = 0;
    active_ = plan;
    return *plan;
  }

  /// Closes the forward: a planning forward's plan is planned from now on; a planned one must have
  /// taken every step.
  void end() {
    Plan* plan = std::exchange(active_, nullptr);
    require(plan != nullptr, "BatchPlans::end() without begin()");
    if (!plan->planned_) {
      plan->planned_ = true;
      plan->plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - plan->planning_started_).count();
      return;
    }
    require(plan->cursor_ == plan->order_.size(), "plan for input ", plan->input(), ": the forward ran ", plan->cursor_,
            " of its ", plan->order_.size(), " planned operations");
  }

  /// Leaves a forward that threw: a plan whose planning forward did not finish is dropped, so the next
  /// forward of that shape plans it afresh.
  void abandon() noexcept {
    Plan* plan = std::exchange(active_, nullptr);
    if (plan != nullptr && !plan->planned_) std::erase_if(plans_, [&](const auto& p) { return p.get() == plan; });
  }

  /// The step an operation of the forward running now takes (BatchPlan::step).
  template <class Step, class Key, class Make>
  Step& step(const void* owner, const Key& key, Make&& make) {
    require(active_ != nullptr, "an operation ran outside a planned forward (BatchPlans::begin)");
    return active_->template step<Step>(owner, key, std::forward<Make>(make));
  }

  /// A resource the steps of the plan being made share (BatchPlan::shared).
  template <class T, class Key, class Make>
  std::shared_ptr<T> shared(const Key& key, Make&& make) {
    require(active_ != nullptr, "a shared resource was asked for outside a planned forward (BatchPlans::begin)");
    return active_->template shared<T>(key, std::forward<Make>(make));
  }

  /// Calls f(const Plan&) for each planned plan, in the order they were made.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& p : plans_) {
      if (p->planned()) f(*p);
    }
  }
  /// What the plans hold, for the report.
  std::vector<PlannedInput> describe() const {
    std::vector<PlannedInput> out;
    for_each([&](const Plan& p) {
      PlannedInput d;
      d.input.assign(p.input().begin(), p.input().end());
      d.operations = p.operations();
      d.steps = p.steps();
      d.plan_ms = p.plan_ms;
      if constexpr (requires { p.replay.captured(); }) {
        d.captured = p.replay.captured();
        d.capture_ms = p.replay.capture_ms;
      }
      out.push_back(std::move(d));
    });
    return out;
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& p : plans_) n += p->planned() ? 1 : 0;
    return n;
  }

 private:
  std::vector<std::unique_ptr<Plan>> plans_;
  Plan* active_ = nullptr;
};

/// Runs one forward over `plans`' plan of `input` (begin, then end; abandon if `forward` throws).
template <class Replay, class Forward>
decltype(auto) with_plan(BatchPlans<Replay>& plans, const Shape& input, Forward&& forward) {
  plans.begin(input);
  try {
    if constexpr (std::is_void_v<decltype(forward())>) {
      forward();
      plans.end();
    } else {
      decltype(auto) result = forward();
      plans.end();
      return result;
    }
  } catch (...) {
    plans.abandon();
    throw;
  }
}

}  // namespace visopt::runtime
