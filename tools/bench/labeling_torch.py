#!/usr/bin/env python3
"""PyTorch counterpart of `cbst bench labeling` (DESIGN §7, §9).

The same two passes, written the way a PyTorch user would (unfused, sort-based):
  pass 1  thresholds: s = interpolate(p)·interpolate(q); conf, cls = s.max(1); pools taken
          every K-th pixel of each image's flattened grid; per pool sort descending,
          t = floor(n·p), threshold = pool[t-1] (1.0 for an empty pool, t = 0 or a
          threshold <= 0); ST: one global pool;
  pass 2  labels: r = s / threshold[c]; label = argmax r if max r >= 1 else 255.
Both passes start from the cached network-resolution probabilities, as cbst's kernels do.

Run only on a GPU host with PyTorch (never by the project's build or tests):
  python3 tools/bench/labeling_torch.py --images 8 --classes 19 --size 1024x2048 --stride 8 \
      [--prior] [--method cbst] [--portion 0.2] [--json out.json]
Columns match cbst's: ms (median), Mpix/s, GB/s moved, GB/s equiv (N·C·H·W·4 bytes per
second), and the fraction of the device-to-device copy bandwidth measured in the same run.
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as F


def parse_size(s):
    h, w = s.split("x")
    return int(h), int(w)


def scores(probs, prior, size):
    s = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
    if prior is not None:
        q = F.interpolate(prior[None], size=size, mode="bilinear", align_corners=False)
        s = s * q
    return s


def class_thresholds(probs, prior, size, policy, portion, pool_stride):
    s = scores(probs, prior, size)
    conf, cls = s.max(1)  # first maximum on ties, as cbst
    n, c = probs.shape[0], probs.shape[1]
    conf = conf.reshape(n, -1)[:, ::pool_stride].reshape(-1)
    cls = cls.reshape(n, -1)[:, ::pool_stride].reshape(-1)
    pool_sizes = torch.bincount(cls, minlength=c)

    def rank_value(pool):
        t = math.floor(pool.numel() * portion)
        if t == 0:
            return 1.0
        v = torch.sort(pool, descending=True).values[t - 1].item()
        return v if v > 0 else 1.0

    if policy == "st":
        thresholds = torch.full((c,), rank_value(conf), device=probs.device)
    else:
        # One sort per class: sort (class, -conf) keys together, then index each class's
        # segment. A composite key keeps it to a single sort of the whole pool.
        order = torch.argsort(conf, descending=True, stable=True)
        cls_sorted = cls[order]
        order = order[torch.argsort(cls_sorted, stable=True)]
        conf_sorted = conf[order]
        starts = torch.cumsum(pool_sizes, 0) - pool_sizes
        t = torch.floor(pool_sizes.double() * portion).long()
        idx = (starts + t - 1).clamp(min=0)
        thresholds = torch.where(t > 0, conf_sorted[idx], torch.ones_like(conf_sorted[idx]))
        thresholds = torch.where(thresholds > 0, thresholds, torch.ones_like(thresholds))
    return thresholds.float(), pool_sizes


def pseudo_labels(probs, prior, size, thresholds):
    r = scores(probs, prior, size) / thresholds[None, :, None, None]
    m, lab = r.max(1)
    lab[m < 1] = 255
    return lab.to(torch.uint8)


def time_ms(fn, repeats):
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return statistics.median(out)


def copy_bandwidth_gbs(nbytes=1 << 30, repeats=20):
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda").fill_(1)
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a), repeats)
    return 2.0 * nbytes / (ms * 1e-3) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--size", default="1024x2048")
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--prior", action="store_true")
    ap.add_argument("--prior-size", default="")
    ap.add_argument("--method", choices=["st", "cbst"], default="cbst")
    ap.add_argument("--portion", type=float, default=0.2)
    ap.add_argument("--pool-stride", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    size = parse_size(a.size)
    h, w = -(-size[0] // a.stride), -(-size[1] // a.stride)
    psize = parse_size(a.prior_size) if a.prior_size else (-(-size[0] // 4), -(-size[1] // 4))
    g = torch.Generator(device="cuda").manual_seed(7)
    logits = torch.rand(a.images, a.classes, h, w, device="cuda", generator=g) * 6.0
    probs = torch.softmax(logits, 1).contiguous()
    prior = (torch.rand(a.classes, *psize, device="cuda", generator=g) * 1e-5) if a.prior else None

    state = {}

    def pass1():
        state["thr"], _ = class_thresholds(probs, prior, size, a.method, a.portion, a.pool_stride)

    def pass2():
        pseudo_labels(probs, prior, size, state["thr"])

    ms = [time_ms(pass1, a.repeats), time_ms(pass2, a.repeats)]
    copy = copy_bandwidth_gbs()
    pixels = a.images * size[0] * size[1]
    in_bytes = 4.0 * (probs.numel() + (prior.numel() if prior is not None else 0))
    moved = [in_bytes, in_bytes + pixels]
    equiv = 4.0 * pixels * a.classes
    print(f"labeling (pytorch {torch.__version__}): {a.images} images, {a.classes} classes, "
          f"labels {size[0]}x{size[1]}, probs {h}x{w}, {a.method} p={a.portion}, "
          f"{torch.cuda.get_device_name()}")
    print(f"device copy bandwidth: {copy:.1f} GB/s")
    print(f"{'pass':<11} {'ms':>10} {'Mpix/s':>10} {'GB/s moved':>12} {'GB/s equiv':>12} "
          f"{'% copy':>8} {'% copy':>8}")
    rows = []
    for name, t, mv in zip(["thresholds", "labels"], ms, moved):
        s = t * 1e-3
        gm, ge = mv / s / 1e9, equiv / s / 1e9
        print(f"{name:<11} {t:10.3f} {pixels / s / 1e6:10.1f} {gm:12.2f} {ge:12.2f} "
              f"{100 * gm / copy:8.1f} {100 * ge / copy:8.1f}")
        rows.append({"pass": name, "ms": t, "mpix_per_s": pixels / s / 1e6, "bytes_moved": mv,
                     "gbs_moved": gm, "bytes_equiv": equiv, "gbs_equiv": ge,
                     "copy_fraction_moved": gm / copy, "copy_fraction_equiv": ge / copy})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "labeling_torch", "images": a.images, "classes": a.classes,
                       "height": size[0], "width": size[1], "probs_height": h, "probs_width": w,
                       "prior": a.prior, "method": a.method, "portion": a.portion,
                       "pool_stride": a.pool_stride, "copy_gbs": copy, "passes": rows}, f, indent=2)


if __name__ == "__main__":
    main()
