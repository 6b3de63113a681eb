#include "engine/autograd.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/tensor_internal.h"

namespace cbst {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence{0};
// Leaves holding a grad-ready hook: while there are none, backward skips looking for them.
std::atomic<int64_t> g_hooked_leaves{0};
}  // namespace

AutogradMeta::~AutogradMeta() {
  if (grad_ready) g_hooked_leaves.fetch_sub(1);
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

Node::Node(std::string name, std::vector<std::shared_ptr<AutogradMeta>> inputs, BackwardFn fn)
    : name_(std::move(name)),
      sequence_(g_next_sequence.fetch_add(1)),
      inputs_(std::move(inputs)),
      fn_(std::move(fn)) {}

std::vector<Tensor> Node::apply(const Tensor& grad_output) {
  CBST_CHECK(fn_ != nullptr, "backward through the graph a second time (op '", name_,
             "'): its saved tensors were freed by the first backward; pass retain_graph=true "
             "to the first backward() if you need to call it twice");
  return fn_(grad_output);
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return output;
  std::vector<std::shared_ptr<AutogradMeta>> metas;
  metas.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    CBST_CHECK(!t.defined() || !t.same(output), "internal: op '", name,
               "' returned one of its inputs while recording autograd");
    metas.push_back(t.defined() && t.requires_grad() ? t.impl().autograd : nullptr);
  }
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::make_shared<Node>(name, std::move(metas), std::move(fn));
  output.impl().autograd = std::move(meta);
  return output;
}

// Two gradients of one tensor, summed. bf16 has no arithmetic: a bf16 tensor used twice
// (fan-out) gets the f32 sum of its gradients rounded back to bf16.
static Tensor add_gradients(const Tensor& a, const Tensor& b) {
  if (a.dtype() != DType::bf16) return add(a, b);
  return add(a.to(DType::f32), b.to(DType::f32)).to(DType::bf16);
}

// Accumulation rule (see header): add into the existing buffer, allocate only the first time.
static void accumulate(AutogradMeta& meta, const Tensor& g) {
  if (!meta.grad.defined()) {
    meta.grad = g.contiguous().same(g) ? g.clone() : g.contiguous();
    return;
  }
  CBST_CHECK(meta.grad.shape() == g.shape(), "gradient of shape ", shape_str(g.shape()),
             " does not match the accumulated gradient of shape ", shape_str(meta.grad.shape()));
  if (g.dtype() == DType::bf16) {
    meta.grad.copy_(add_gradients(meta.grad, g));  // in place: the buffer stays allocated
    return;
  }
  CBST_DISPATCH("accumulate_grad", g.device(), binary, kern::BinaryOp::add,
                detail::arg(meta.grad), detail::arg(meta.grad), detail::arg(g));
}

namespace {

// The hooked leaves a backward from `root` can reach, each with the sequence number of the
// last node (in walk order) that has it as an input; `order` is sorted so that the first is
// final first.
struct HookedLeaves {
  struct Leaf {
    AutogradMeta* meta;
    uint64_t last_sequence;
    bool reached;  // received a gradient in this pass
  };
  std::vector<Leaf> order;
  std::unordered_map<AutogradMeta*, size_t> index;  // into order
  size_t called = 0;  // order[0, called) are done with

  explicit HookedLeaves(const std::shared_ptr<Node>& root) {
    if (g_hooked_leaves.load() == 0) return;
    std::unordered_set<Node*> seen = {root.get()};
    std::vector<Node*> stack = {root.get()};
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      for (const std::shared_ptr<AutogradMeta>& in : node->inputs()) {
        if (!in) continue;
        if (in->grad_fn) {
          if (seen.insert(in->grad_fn.get()).second) stack.push_back(in->grad_fn.get());
        } else if (in->grad_ready) {
          auto [it, added] = index.emplace(in.get(), order.size());
          if (added) order.push_back({.meta = in.get(), .last_sequence = node->sequence(), .reached = false});
          order[it->second].last_sequence = std::min(order[it->second].last_sequence, node->sequence());
        }
      }
    }
    std::sort(order.begin(), order.end(), [](const Leaf& a, const Leaf& b) { return a.last_sequence > b.last_sequence; });
    for (size_t i = 0; i < order.size(); ++i) index[order[i].meta] = i;
  }
  void reached(AutogradMeta* meta) {
    if (auto it = index.find(meta); it != index.end()) order[it->second].reached = true;
  }
  // Calls the hooks of the leaves whose last node comes before the node `sequence` in the walk
  // (all of them when `all`).
  void call_final_before(uint64_t sequence, bool all = false) {
    for (; called < order.size() && (all || order[called].last_sequence > sequence); ++called)
      if (order[called].reached && order[called].meta->grad_ready) order[called].meta->grad_ready();
  }
};

}  // namespace

void set_grad_ready_hook(const Tensor& leaf, std::function<void()> hook) {
  CBST_CHECK(leaf.defined() && leaf.is_leaf(), "set_grad_ready_hook: needs a leaf tensor (a parameter), got ",
             leaf.defined() ? leaf.str() : std::string("an undefined tensor"));
  auto& meta = leaf.impl().autograd;
  if (!meta) meta = std::make_shared<AutogradMeta>();
  if (!meta->grad_ready && hook) g_hooked_leaves.fetch_add(1);
  if (meta->grad_ready && !hook) g_hooked_leaves.fetch_sub(1);
  meta->grad_ready = std::move(hook);
}

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  CBST_CHECK(root.requires_grad(), "backward(): tensor ", root.str(),
             " does not require grad (no input of the computation had requires_grad set)");
  Tensor g = gradient;
  if (!g.defined()) {
    CBST_CHECK(root.numel() == 1, "backward(): tensor ", root.str(),
               " is not a scalar; pass an explicit upstream gradient of its shape");
    g = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  CBST_CHECK(g.shape() == root.shape(), "backward(): gradient shape ", shape_str(g.shape()),
             " differs from the tensor's shape ", shape_str(root.shape()));
  CBST_CHECK(g.device() == root.device() && g.dtype() == root.dtype(),
             "backward(): gradient ", g.str(), " does not match tensor ", root.str());

  NoGradGuard no_grad;
  AutogradMeta& root_meta = *root.impl().autograd;
  if (!root_meta.grad_fn) {
    accumulate(root_meta, g);
    if (root_meta.grad_ready) root_meta.grad_ready();
    return;
  }
  HookedLeaves hooked(root_meta.grad_fn);
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence() < b->sequence();
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>,
                      decltype(later_first)>
      queue(later_first);
  std::unordered_map<Node*, Tensor> pending;
  pending[root_meta.grad_fn.get()] = g;
  queue.push(root_meta.grad_fn);
  // Decreasing sequence order is a reverse topological order: every consumer of a node was
  // created after it, and nodes are only ever queued by later nodes.
  while (!queue.empty()) {
    std::shared_ptr<Node> node = queue.top();
    queue.pop();
    hooked.call_final_before(node->sequence());
    auto it = pending.find(node.get());
    if (it == pending.end()) continue;  // queued twice
    Tensor grad_out = std::move(it->second);
    pending.erase(it);
    std::vector<Tensor> grads = node->apply(grad_out);
    if (!retain_graph) node->release();
    CBST_CHECK(grads.size() == node->inputs().size(), "internal: backward of '", node->name(),
               "' returned ", grads.size(), " gradients for ", node->inputs().size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const std::shared_ptr<AutogradMeta>& in = node->inputs()[i];
      if (!in || !grads[i].defined()) continue;
      if (in->grad_fn) {
        Node* producer = in->grad_fn.get();
        auto p = pending.find(producer);
        if (p == pending.end()) {
          pending.emplace(producer, grads[i]);
          queue.push(in->grad_fn);
        } else {
          p->second = add_gradients(p->second, grads[i]);
        }
      } else if (in->requires_grad) {
        accumulate(*in, grads[i]);
        if (in->grad_ready) hooked.reached(in.get());
      }
    }
  }
  hooked.call_final_before(0, /*all=*/true);
}

// ---- Tensor's autograd accessors

bool Tensor::requires_grad() const {
  return defined() && impl().autograd && impl().autograd->requires_grad;
}

Tensor& Tensor::set_requires_grad(bool enabled) {
  auto& meta = impl().autograd;
  CBST_CHECK(!(meta && meta->grad_fn), "set_requires_grad: only leaf tensors can change ",
             "requires_grad (this one was produced by op '", meta->grad_fn->name(), "')");
  if (!enabled && !meta) return *this;
  if (!meta) meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = enabled;
  return *this;
}

bool Tensor::is_leaf() const { return !(impl().autograd && impl().autograd->grad_fn); }

Tensor Tensor::grad() const {
  return impl().autograd ? impl().autograd->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  if (!impl().autograd) impl().autograd = std::make_shared<AutogradMeta>();
  impl().autograd->grad = g;
}

void Tensor::zero_grad() {
  if (!impl().autograd || !impl().autograd->grad.defined()) return;
  NoGradGuard guard;
  impl().autograd->grad.fill_(0.0);
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  run_backward(*this, gradient, retain_graph);
}

}  // namespace cbst
