#pragma once
// The traced representation: a model's forward at one input shape as the list of operations its
// blocks call, with their shapes, multiply-adds and every activation's size and lifetime. It is the
// lifecycle's first stage (docs/architecture.md, "Lifecycle"): models::trace makes it without computing
// anything, compile() validates it against the backend's rules before any weight is converted or
// uploaded, and models::summarize reads multiply-adds and memory from it.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/shape.hpp"
#include "memory_plan.hpp"

namespace visopt::runtime {

struct TracedOperation {
  std::string kind;           // the operation's name in nn/operations.hpp: "conv2d", "linear", "attention", ...
  std::vector<Shape> inputs;  // the tensors it reads (a residual included)
  Shape output;
  std::int64_t macs = 0;      // multiply-adds of the whole batch
  int heads = 0;              // attention: the number of heads

  std::string text() const {
    std::string s = kind + "(";
    for (std::size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + inputs[i].to_string();
    s += ") -> " + output.to_string();
    if (heads > 0) s += " heads=" + std::to_string(heads);
    return s;
  }
  nlohmann::json json() const {
    nlohmann::json in = nlohmann::json::array();
    for (const Shape& shape : inputs) in.push_back(std::vector<std::int64_t>(shape.begin(), shape.end()));
    nlohmann::json j{{"kind", kind}, {"inputs", in}, {"output", std::vector<std::int64_t>(output.begin(), output.end())},
                     {"macs", macs}};
    if (heads > 0) j["heads"] = heads;
    return j;
  }
};

struct Trace {
  std::string model, level;
  Shape input;                               // [N, 3, H, W]
  std::vector<TracedOperation> operations;   // in the order the forward calls them
  std::vector<PlannedBuffer> buffers;        // every activation: bytes in the level's storage precision, lifetime
  std::size_t weight_bytes = 0;              // parameters as the level stores them

  std::int64_t macs() const {
    std::int64_t total = 0;
    for (const auto& op : operations) total += op.macs;
    return total;
  }

  /// "resnet18 at O3, input [8,3,64,64]: 23 operations" and one line per operation.
  std::string text() const {
    std::string s = model + " at " + level + ", input " + input.to_string() + ": " + std::to_string(operations.size()) +
                    " operations";
    for (std::size_t i = 0; i < operations.size(); ++i) s += "\n  " + std::to_string(i + 1) + " " + operations[i].text();
    return s;
  }
  nlohmann::json json() const {
    nlohmann::json ops = nlohmann::json::array();
    for (const auto& op : operations) ops.push_back(op.json());
    return {{"model", model},
            {"level", level},
            {"input", std::vector<std::int64_t>(input.begin(), input.end())},
            {"macs", macs()},
            {"weight_bytes", weight_bytes},
            {"operations", ops}};
  }
};

}  // namespace visopt::runtime
