# Sourced by tools/gpu_check.sh and tools/bench/gpu_profile.sh: what both need on a GPU host.

# Sets cudnn_root to CUDNN_ROOT, else to PyTorch's nvidia.cudnn package (a namespace package
# in the CUDA 13 wheels: no __init__.py, so no __file__), else empty; puts its lib/ first on
# LD_LIBRARY_PATH when found.
cbst_find_cudnn() {
  cudnn_root="${CUDNN_ROOT:-}"
  if [[ -z "$cudnn_root" ]]; then
    cudnn_root=$(python3 -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  fi
  if [[ -n "$cudnn_root" ]]; then export LD_LIBRARY_PATH="$cudnn_root/lib:${LD_LIBRARY_PATH:-}"; fi
}

# The learning rate the step benchmarks use for MODEL (ResNet-38's frozen-BN step wants less).
cbst_bench_lr() {
  if [[ $1 == resnet38 ]]; then echo 1e-4; else echo 1e-3; fi
}
