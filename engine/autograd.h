// Define-by-run autograd.
//
// THE ACCUMULATION RULE: backward always *accumulates* into gradient buffers (`grad += g`).
// Nothing in backward ever overwrites a gradient. Gradients are zeroed only by
// `Tensor::zero_grad()` / the optimizer's `zero_grad()`, which keep the buffer allocated,
// so after the first step parameter gradients never allocate again. This is what makes
// fan-out (FCN skip branches, residual connections) correct without special cases.
//
// Recording: an op whose inputs require grad (and grad mode is on) creates one Node holding
// a closure over what its backward needs (saved tensors are detached, so a node never keeps
// its own output's history alive). Nodes carry a global sequence number; `backward()` walks
// the reachable nodes in decreasing sequence order, which is a reverse topological order
// because a node is always created after the nodes producing its inputs.
//
// After a backward without retain_graph every visited node drops its saved tensors; a second
// backward through such a node throws an error naming the op.
//
// Grad-ready hooks (set_grad_ready_hook, for launching a parameter's gradient all-reduce while
// backward goes on, engine/dist.h): a leaf's gradient is final once the walk has passed the
// last node, in walk order (the lowest sequence number), that has the leaf as an input, or
// when the walk ends. Before running each node the walk calls the hooks of the leaves whose
// last node lies behind it; a leaf that received no gradient in the pass is not called.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cbst {

struct AutogradMeta {
  AutogradMeta() = default;
  ~AutogradMeta();
  AutogradMeta(const AutogradMeta&) = delete;
  AutogradMeta& operator=(const AutogradMeta&) = delete;

  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient (leaves)
  std::shared_ptr<Node> grad_fn;  // producing node; null for leaves
  std::function<void()> grad_ready;  // leaves: set_grad_ready_hook
};

// Given the gradient of the node's output, returns one gradient per input (an undefined
// Tensor where an input needs none). Shapes must equal the inputs' shapes.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

class Node {
 public:
  Node(std::string name, std::vector<std::shared_ptr<AutogradMeta>> inputs, BackwardFn fn);

  const std::string& name() const { return name_; }
  uint64_t sequence() const { return sequence_; }
  const std::vector<std::shared_ptr<AutogradMeta>>& inputs() const { return inputs_; }
  bool released() const { return !fn_; }
  std::vector<Tensor> apply(const Tensor& grad_output);
  void release() { fn_ = nullptr; }

 private:
  std::string name_;
  uint64_t sequence_;
  std::vector<std::shared_ptr<AutogradMeta>> inputs_;  // null entries: input needs no grad
  BackwardFn fn_;
};

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Disables recording in a scope (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op on these inputs must be recorded.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a node to `output` whose inputs are `inputs`, if any of them requires grad and
// grad mode is on; returns `output` either way. Op implementations call this last.
Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn fn);

// Registers `hook` on `leaf` (replacing an earlier one; an empty function removes it): every
// later backward that accumulates into the leaf's gradient calls it once, on the thread that
// runs backward, as soon as that gradient has received its last contribution of the pass (see
// above), so the hook may read it. Not called in a pass that gives the leaf no gradient.
void set_grad_ready_hook(const Tensor& leaf, std::function<void()> hook);

// Runs backward from `root` with upstream gradient `gradient` (same shape as root).
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace cbst
