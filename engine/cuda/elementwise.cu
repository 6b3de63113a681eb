// CUDA kernels of the element-wise basic ops. Semantics come from engine/kernel_math.h,
// shared with the CPU kernels; this file only decides how the elements are walked.
//
// Every op is a functor mapped over up to three inputs by one of two kernels:
// - all operands contiguous and aligned: each thread moves kVec elements per step with one
//   16-byte load or store per operand (kVec = 16 bytes over the widest element);
// - otherwise: one element per thread, each operand's offset from its coalesced dims
//   (engine/strided_index.h), with 32-bit index arithmetic below 2^31 elements.
// Grid-stride loops, one stream per device.
#include <algorithm>
#include <cstdint>

#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/kernel_math.h"
#include "engine/strided_index.h"

namespace cbst::kern::cuda {

namespace {

constexpr int kThreads = 256;

// The type of an input a functor does not read.
struct None {};

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <int N, class T>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p, int64_t pack) {
  return reinterpret_cast<const Pack<T, N>*>(p)[pack];
}
template <int N>
__device__ __forceinline__ Pack<None, N> load_pack(const None*, int64_t) {
  return {};
}

template <class T>
__device__ __forceinline__ T load_at(const T* p, int64_t offset) {
  return p[offset];
}
__device__ __forceinline__ None load_at(const None*, int64_t) { return {}; }

template <class Fn, class A, class B, class C>
__device__ __forceinline__ auto call(const Fn& fn, A a, B b, C c) {
  if constexpr (Fn::arity == 0) return fn();
  else if constexpr (Fn::arity == 1) return fn(a);
  else if constexpr (Fn::arity == 2) return fn(a, b);
  else return fn(a, b, c);
}

template <int kVec, class Out, class A, class B, class C, class Fn>
__global__ void map_contiguous_kernel(Out* out, const A* a, const B* b, const C* c, int64_t n,
                                      Fn fn) {
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / kVec;
  for (int64_t p = first; p < packs; p += step) {
    const Pack<A, kVec> pa = load_pack<kVec>(a, p);
    const Pack<B, kVec> pb = load_pack<kVec>(b, p);
    const Pack<C, kVec> pc = load_pack<kVec>(c, p);
    Pack<Out, kVec> o;
#pragma unroll
    for (int k = 0; k < kVec; ++k) o.v[k] = call(fn, pa.v[k], pb.v[k], pc.v[k]);
    reinterpret_cast<Pack<Out, kVec>*>(out)[p] = o;
  }
  for (int64_t i = packs * kVec + first; i < n; i += step)
    out[i] = call(fn, load_at(a, i), load_at(b, i), load_at(c, i));
}

template <class Index, class Out, class A, class B, class C, class Fn>
__global__ void map_strided_kernel(Out* out, StridedOperand so, const A* a, StridedOperand sa,
                                   const B* b, StridedOperand sb, const C* c, StridedOperand sc,
                                   Index n, Fn fn) {
  const Index step = Index(blockDim.x) * Index(gridDim.x);
  for (Index i = Index(blockIdx.x) * Index(blockDim.x) + Index(threadIdx.x); i < n; i += step)
    out[so.offset(i)] = call(fn, load_at(a, sa.offset(i)), load_at(b, sb.offset(i)),
                             load_at(c, sc.offset(i)));
}

template <class T> constexpr size_t width() { return sizeof(T); }
template <> constexpr size_t width<None>() { return 1; }

// out[i] = fn(a[i], b[i], c[i]) over out's elements; the inputs fn does not read are None.
template <class Out, class A = None, class B = None, class C = None, class Fn>
void map(Fn fn, const TensorArg& out, const TensorArg* a = nullptr, const TensorArg* b = nullptr,
         const TensorArg* c = nullptr) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int kVec = int(16 / std::max({width<Out>(), width<A>(), width<B>(), width<C>()}));
  bool fast = true;
  auto check = [&](const TensorArg* t, size_t elem) {
    if (t) fast = fast && t->contiguous() && reinterpret_cast<uintptr_t>(t->data) % (elem * kVec) == 0;
  };
  check(&out, width<Out>());
  check(a, width<A>());
  check(b, width<B>());
  check(c, width<C>());
  auto* po = static_cast<Out*>(out.data);
  auto* pa = static_cast<const A*>(a ? a->data : nullptr);
  auto* pb = static_cast<const B*>(b ? b->data : nullptr);
  auto* pc = static_cast<const C*>(c ? c->data : nullptr);
  if (fast) {
    map_contiguous_kernel<kVec><<<cuda_blocks((n + kVec - 1) / kVec, kThreads), kThreads, 0,
                                  cuda_stream()>>>(po, pa, pb, pc, n, fn);
  } else {
    auto layout = [](const TensorArg* t) { return t ? strided_operand(*t) : StridedOperand(); };
    const StridedOperand so = strided_operand(out), sa = layout(a), sb = layout(b), sc = layout(c);
    if (n <= kMax32BitElements)
      map_strided_kernel<uint32_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
          po, so, pa, sa, pb, sb, pc, sc, uint32_t(n), fn);
    else
      map_strided_kernel<int64_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
          po, so, pa, sa, pb, sb, pc, sc, n, fn);
  }
  CBST_CUDA_LAUNCH_CHECK();
}

// ---- the functors

template <class To, class From>
struct Convert {
  static constexpr int arity = 1;
  __device__ To operator()(From x) const { return convert_element<To>(x); }
};

template <class T>
struct Fill {
  static constexpr int arity = 0;
  T value;
  __device__ T operator()() const { return value; }
};

template <class T>
struct Unary {
  static constexpr int arity = 1;
  UnaryOp op;
  double scalar;
  __device__ T operator()(T x) const { return apply_unary(op, x, scalar); }
};

template <class T>
struct CompareScalar {
  static constexpr int arity = 1;
  UnaryOp op;
  double scalar;
  __device__ uint8_t operator()(T x) const { return compare_scalar(op, x, scalar); }
};

template <class T>
struct Binary {
  static constexpr int arity = 2;
  BinaryOp op;
  __device__ T operator()(T x, T y) const { return apply_binary(op, x, y); }
};

template <class T>
struct Compare {
  static constexpr int arity = 2;
  BinaryOp op;
  __device__ uint8_t operator()(T x, T y) const { return compare(op, x, y); }
};

template <class T>
struct Select {
  static constexpr int arity = 3;
  __device__ T operator()(uint8_t cond, T x, T y) const { return cond ? x : y; }
};

// ---- random numbers (dst contiguous)

enum class RandomKind { uniform, normal, bernoulli };

template <class T>
__global__ void random_kernel(RandomKind kind, T* d, int64_t n, double p0, double p1,
                              uint64_t seed, uint64_t offset) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    const uint64_t ctr = offset + uint64_t(i);
    double v;
    if (kind == RandomKind::uniform) v = random_uniform(seed, ctr, p0, p1);
    else if (kind == RandomKind::normal) v = random_normal(seed, ctr, p0, p1);
    else v = random_bernoulli(seed, ctr, p0);
    d[i] = T(v);
  }
}

void launch_random(RandomKind kind, const TensorArg& dst, double p0, double p1, uint64_t seed,
                   uint64_t offset) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  CBST_DISPATCH_FLOAT_TYPES(dst.dtype, "random", [&] {
    random_kernel<scalar_t><<<cuda_blocks(n, kThreads), kThreads, 0, cuda_stream()>>>(
        kind, static_cast<scalar_t*>(dst.data), n, p0, p1, seed, offset);
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace

void copy(const TensorArg& dst, const TensorArg& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.contiguous() && src.contiguous() && dst.dtype == src.dtype) {
    CBST_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, size_t(n) * dtype_size(dst.dtype),
                                    cudaMemcpyDeviceToDevice, cuda_stream()));
    return;
  }
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "copy", [&] {
    using To = scalar_t;
    CBST_DISPATCH_STORAGE_TYPES(src.dtype, "copy", [&] {
      map<To, scalar_t>(Convert<To, scalar_t>{}, dst, &src);
    });
  });
}

void fill(const TensorArg& dst, double value) {
  CBST_DISPATCH_STORAGE_TYPES(dst.dtype, "fill", [&] {
    map<scalar_t>(Fill<scalar_t>{convert_element<scalar_t>(value)}, dst);
  });
}

void unary(UnaryOp op, const TensorArg& dst, const TensorArg& src, double scalar) {
  CBST_DISPATCH_ALL_TYPES(src.dtype, "unary", [&] {
    if (is_comparison(op)) map<uint8_t, scalar_t>(CompareScalar<scalar_t>{op, scalar}, dst, &src);
    else map<scalar_t, scalar_t>(Unary<scalar_t>{op, scalar}, dst, &src);
  });
}

void binary(BinaryOp op, const TensorArg& dst, const TensorArg& a, const TensorArg& b) {
  CBST_DISPATCH_ALL_TYPES(a.dtype, "binary", [&] {
    if (is_comparison(op)) map<uint8_t, scalar_t, scalar_t>(Compare<scalar_t>{op}, dst, &a, &b);
    else map<scalar_t, scalar_t, scalar_t>(Binary<scalar_t>{op}, dst, &a, &b);
  });
}

void where(const TensorArg& dst, const TensorArg& cond, const TensorArg& a, const TensorArg& b) {
  CBST_DISPATCH_ALL_TYPES(a.dtype, "where", [&] {
    map<scalar_t, uint8_t, scalar_t, scalar_t>(Select<scalar_t>{}, dst, &cond, &a, &b);
  });
}

void uniform(const TensorArg& dst, double low, double high, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::uniform, dst, low, high, seed, offset);
}
void normal(const TensorArg& dst, double mean, double stddev, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::normal, dst, mean, stddev, seed, offset);
}
void bernoulli(const TensorArg& dst, double p, uint64_t seed, uint64_t offset) {
  launch_random(RandomKind::bernoulli, dst, p, 0.0, seed, offset);
}

}  // namespace cbst::kern::cuda
