#!/usr/bin/env python3
"""PyTorch counterpart of `cbst bench layers`: the same single-layer cases, timed the same way.

The cases are not repeated here: this script reads the JSON that `cbst bench layers --json`
wrote (each row carries its op and shape) and times every row in PyTorch:
  fwd ms  median of --repeats forwards under torch.no_grad() (one untimed run first)
  bwd ms  median of y.backward(ones, retain_graph=True) (gradients accumulate, as in cbst)
Ops: conv (F.conv2d), deconv (F.conv_transpose2d), maxpool (F.max_pool2d), bn_train /
bn_frozen (F.batch_norm with batch / running statistics), upsample (F.interpolate bilinear,
align_corners False), softmax_ce (F.cross_entropy, ignore_index 255, ~10% ignored labels).

A developer tool (pip install torch), never run by the build or the tests:
  cbst bench layers --json cbst_layers.json
  python3 tools/bench/layers_torch.py --cases cbst_layers.json --threads 2 --json torch_layers.json
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def median_ms(repeats, f):
    f()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    return t[len(t) // 2]


def build(case, g):
    """Returns (leaves, forward) for one case of cbst's table."""
    op, n, c, h, w = case["op"], case["n"], case["c"], case["h"], case["w"]
    x = (torch.rand(n, c, h, w, generator=g) * 2 - 1).requires_grad_()
    if op in ("conv", "deconv"):
        co, k = case["co"], case["k"]
        scale = 1.0 / (c * k * k) ** 0.5
        shape = (co, c, k, k) if op == "conv" else (c, co, k, k)
        wt = ((torch.rand(*shape, generator=g) * 2 - 1) * scale).requires_grad_()
        b = ((torch.rand(co, generator=g) * 2 - 1) * 0.1).requires_grad_() if case["bias"] else None
        kw = dict(stride=case["stride"], padding=case["pad"], dilation=case["dilation"])
        fn = F.conv2d if op == "conv" else F.conv_transpose2d
        return lambda: fn(x, wt, b, **kw)
    if op == "maxpool":
        return lambda: F.max_pool2d(x, case["k"], stride=case["stride"], padding=case["pad"],
                                    ceil_mode=case["ceil_mode"])
    if op in ("bn_train", "bn_frozen"):
        gamma = (torch.rand(c, generator=g) + 0.5).requires_grad_()
        beta = (torch.rand(c, generator=g) - 0.5).requires_grad_()
        rm, rv = torch.rand(c, generator=g) - 0.5, torch.rand(c, generator=g) + 0.5
        training = op == "bn_train"
        return lambda: F.batch_norm(x, rm, rv, gamma, beta, training=training, eps=1e-5)
    if op == "upsample":
        return lambda: F.interpolate(x, size=(case["out_h"], case["out_w"]), mode="bilinear",
                                     align_corners=False)
    if op == "softmax_ce":
        labels = torch.randint(0, c, (n, h, w), generator=g)
        labels[torch.rand(labels.shape, generator=g) < 0.1] = 255
        return lambda: F.cross_entropy(x, labels, ignore_index=255)
    raise SystemExit("layers_torch.py: error: unknown op '%s' in case %s; add it to build()" % (op, case["case"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", required=True, help="JSON written by `cbst bench layers --json`")
    ap.add_argument("--repeats", type=int, default=0, help="timed repetitions (0: as cbst's run)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.cases) as f:
        cbst = json.load(f)
    repeats = a.repeats or cbst["repeats"]
    g = torch.Generator().manual_seed(11)
    rows = []
    print("layers f32 (PyTorch %s), %d threads, median of %d" % (torch.__version__, torch.get_num_threads(), repeats))
    print("%-16s %-10s %9s %9s" % ("case", "op", "fwd ms", "bwd ms"))
    for case in cbst["rows"]:
        forward = build(case, g)
        y = forward()
        if not torch.isfinite(y).all():
            raise SystemExit("layers_torch.py: error: %s output is not finite" % case["case"])
        with torch.no_grad():
            fwd = median_ms(repeats, forward)
        gy = torch.ones_like(y)
        bwd = median_ms(repeats, lambda: y.backward(gy, retain_graph=True))
        rows.append({"case": case["case"], "op": case["op"], "fwd_ms": fwd, "bwd_ms": bwd})
        print("%-16s %-10s %9.2f %9.2f" % (case["case"], case["op"], fwd, bwd))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"benchmark": "layers", "implementation": "pytorch", "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "repeats": repeats, "rows": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
