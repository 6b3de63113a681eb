#!/usr/bin/env python3
"""Where the CPU time of a cbst run goes, by category, from a `perf record` file.

  perf record -F 499 --delay 15000 -o fcn.data build-perf/tools/cbst bench train-step \
      --device cpu --model fcn8s-vgg16 --size 128 --steps 4
  python3 tools/bench/perf_breakdown.py fcn.data

--delay (ms) skips the model's construction (random initialisation of 134M weights is
seconds of Philox + Box-Muller) so that the samples are the steps. The categories follow the
issue's list: GEMM (OpenBLAS kernel and its packing copies), im2col, col2im, batch norm,
elementwise (the engine's unary/binary/where/fill/copy kernels, relu, dropout), SGD, other
layers, allocation (page faults and the kernel's page clearing, memset of new buffers,
unmapping), thread waits (sched_yield, futex, libgomp) and the rest.
"""
import re
import subprocess
import sys

CATEGORIES = [
    ("gemm", r"sgemm_kernel|dgemm_kernel|gemm_.*(copy|beta)|sgemm_|dgemm_|micro_kernel|gemm_blocked"),
    ("im2col", r"im2col"),
    ("col2im", r"col2im"),
    ("batch norm", r"batch_norm|train_forward|train_backward|eval_forward"),
    ("elementwise", r"kern::cpu::.*(unary|binary|where|fill|copy)|relu|dropout|add_bias|channel_sum"),
    ("sgd", r"sgd"),
    ("pool/upsample/softmax-ce", r"max_pool|upsample|softmax|cross_entropy|crop"),
    ("allocation", r"page_fault|clear_page|do_anonymous_page|handle_mm_fault|memset|unmap|free_pages|"
                   r"alloc_pages|mem_cgroup|memcg|lruvec|folio|get_page_from_freelist|rmqueue|zap_|"
                   r"lock_vma|_raw_spin_unlock_irqrestore|__list_del|free_unref|mmap|munmap|madvise|"
                   r"release_pages|tlb|malloc|_int_free|cfree|aligned_alloc"),
    ("thread waits", r"sched_yield|__schedule|futex|gomp|finish_task_switch|pick_next|schedule|"
                     r"syscall|entry_SYSCALL|do_syscall|blas_thread_server"),
]


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: perf_breakdown.py PERF_DATA")
    report = subprocess.run(["perf", "report", "-i", sys.argv[1], "--no-children", "--sort", "sym",
                             "--stdio", "--percent-limit", "0"], capture_output=True, text=True, check=True).stdout
    totals = {name: 0.0 for name, _ in CATEGORIES}
    totals["other"] = 0.0
    top_other = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        pct, sym = float(m.group(1)), m.group(2)
        for name, pattern in CATEGORIES:
            if re.search(pattern, sym):
                totals[name] += pct
                break
        else:
            totals["other"] += pct
            top_other.append((pct, sym))
    for name, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        print("%-26s %6.1f%%" % (name, pct))
    top_other.sort(reverse=True)
    if top_other:
        print("largest in other: " + "; ".join("%.1f%% %s" % (p, s[:70]) for p, s in top_other[:4]))


if __name__ == "__main__":
    main()
