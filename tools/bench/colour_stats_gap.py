#!/usr/bin/env python3
"""Can colour statistics alone close the synthetic benchmark's domain gap? (issue 10)

Writes two copies of a benchmark's target val split (Cityscapes layout) whose images are
moved onto the source's colour statistics, so that a source-trained model can be evaluated
on them with `cbst eval`:

  OUT/moments/cityscapes    every target image: per-channel mean and standard deviation of
                            the whole target val set mapped onto the source set's (Reinhard's
                            transfer in RGB);
  OUT/histogram/cityscapes  every target image on its own: per-channel histogram matched to
                            the pooled source histogram.

Labels are copied unchanged. If a source model scores about as well on these as on the
originals, and far below the target-supervised oracle, the gap is not one of colour
statistics.

  python3 tools/bench/colour_stats_gap.py BENCH OUT      # BENCH: what `cbst synth` wrote
  cbst eval --data cityscapes=OUT/moments/cityscapes --split val --model M --checkpoint C

Developer-time only (numpy, pillow); nothing in the build or the tests needs it.
"""
import glob
import os
import shutil
import sys

import numpy as np
from PIL import Image


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def save(array, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8)).save(path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bench, out = sys.argv[1], sys.argv[2]
    sources = sorted(glob.glob(os.path.join(bench, "gta5", "images", "*.png")))
    targets = sorted(glob.glob(os.path.join(bench, "cityscapes", "leftImg8bit", "val", "*", "*.png")))
    if not sources or not targets:
        sys.exit(f"{bench}: no gta5/images or cityscapes/leftImg8bit/val images (write one with cbst synth)")
    src = np.concatenate([load(p).reshape(-1, 3) for p in sources])
    tgt = np.concatenate([load(p).reshape(-1, 3) for p in targets])
    src_mean, src_std = src.mean(0), src.std(0)
    tgt_mean, tgt_std = tgt.mean(0), np.maximum(tgt.std(0), 1e-6)
    src_sorted = [np.sort(src[:, c]) for c in range(3)]
    print(f"source mean {src_mean.round(1)} std {src_std.round(1)}; target mean {tgt_mean.round(1)} std {tgt_std.round(1)}")

    root = os.path.join(bench, "cityscapes")
    for variant in ("moments", "histogram"):
        dst = os.path.join(out, variant, "cityscapes")
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(os.path.join(root, "gtFine"), os.path.join(dst, "gtFine"))
    for path in targets:
        image = load(path)
        rel = os.path.relpath(path, root)
        save((image - tgt_mean) / tgt_std * src_std + src_mean, os.path.join(out, "moments", "cityscapes", rel))
        matched = np.empty_like(image)
        for c in range(3):
            values = image[..., c].ravel()
            ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable") / max(values.size - 1, 1)
            quantiles = np.linspace(0, 1, src_sorted[c].size)
            matched[..., c] = np.interp(ranks, quantiles, src_sorted[c]).reshape(image.shape[:2])
        save(matched, os.path.join(out, "histogram", "cityscapes", rel))
    print(f"wrote {len(targets)} images to {out}/moments and {out}/histogram")


if __name__ == "__main__":
    main()
