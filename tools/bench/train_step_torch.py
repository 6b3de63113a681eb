#!/usr/bin/env python3
"""PyTorch counterpart of `cbst bench train-step` (DESIGN §9, reference/performance.md §1).

The same training step on the same architectures, written as a PyTorch user would:
  FCN8s-VGG16 (at-once)  conv1_1 pad 100, ceil-mode 2×2 max pools, fc6 7×7 conv (4096),
                         fc7 1×1 (4096), element-wise dropout 0.5 after each, score_fr /
                         score_pool4 (on 0.01·pool4) / score_pool3 (on 0.0001·pool3), frozen
                         bilinear ConvTranspose2d 4/2, 4/2, 16/8 without bias, crops 5, 9, 31.
  ResNet-38 A1, stride 8 pre-activation blocks B2–B7 (models/resnet38.cpp), BN eps 1.001e-5 and
                         frozen (running statistics, γ/β trainable), dropout 0.3/0.5 before
                         the last conv of B6/B7; head conv6a 3×3 dil 12 (512) + ReLU,
                         classifier 3×3 dil 12; logits upsampled bilinearly to the input.
  step                   zero_grad → forward → cross_entropy(ignore_index=255) → loss.item()
                         → backward → SGD(momentum 0.9; weights lr×1 wd 5e-4, biases lr×2 wd 0).
Knobs as a PyTorch user leaves them: torch.backends.cudnn.benchmark = True, TF32 at PyTorch's
defaults (cuDNN convolutions TF32, matmul not), NCHW float32, no AMP, no torch.compile.
Inputs: random images in [-2, 2], random labels with about 10% 255. Peak memory is
torch.cuda.max_memory_allocated over the timed steps (reset after the warm-up), the same
quantity as cbst's allocator high-water mark.

  small-fcn              three stages of two 3×3 conv (no bias)–BN–ReLU, 2×2 ceil-mode max
                         pools after the first two, dilations 2 and 4 in the third,
                         dropout 0.1, 1×1 classifier, logits upsampled bilinearly to the input.
  small-deeplabv3plus    tools/bench/small_deeplabv3plus_torch.py (same parameter names as cbst).
--mode infer times the forward alone in eval mode under torch.no_grad() (as `cbst bench
train-step --mode infer`). --threads sets torch.set_num_threads (CPU runs).

Run with PyTorch installed (a developer tool: never by the project's build or tests):
  python3 tools/bench/train_step_torch.py --model fcn8s-vgg16 --size 500 --batch 1 [--json out.json]
  python3 tools/bench/train_step_torch.py --model resnet38 --size 500 --batch 2
  python3 tools/bench/train_step_torch.py --device cpu --threads 2 --model fcn8s-vgg16 --size 128
tools/bench/compare_cpu.sh runs both programs side by side on the CPU. It prints the parameter
counts and checks them against cbst's (FCN8s 134,260,544 + 4867·C + 288·C², ResNet-38 trunk
105,070,912; others against --expect-parameters), so the two programs time the same network.
A model without a twin here is refused: add its class to MODELS below.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from small_deeplabv3plus_torch import SmallDeepLabV3Plus  # the twin of models/small_deeplabv3plus.h

BN_EPS = 1.001e-5  # ademxapp's BN epsilon

# ------------------------------------------------------------------------------ FCN8s-VGG16

VGG = [("conv1_1", 3, 64, False), ("conv1_2", 64, 64, True),
       ("conv2_1", 64, 128, False), ("conv2_2", 128, 128, True),
       ("conv3_1", 128, 256, False), ("conv3_2", 256, 256, False), ("conv3_3", 256, 256, True),
       ("conv4_1", 256, 512, False), ("conv4_2", 512, 512, False), ("conv4_3", 512, 512, True),
       ("conv5_1", 512, 512, False), ("conv5_2", 512, 512, False), ("conv5_3", 512, 512, True)]


def bilinear_kernel(channels, k):
    """surgery.upsample_filt on the diagonal: W[c, c] = outer(taps, taps)."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(k, dtype=torch.float64) - center).abs() / factor
    w = torch.zeros(channels, channels, k, k, dtype=torch.float64)
    for c in range(channels):
        w[c, c] = torch.outer(taps, taps)
    return w.float()


class FCN8sVGG16(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.pool_after = []
        for name, cin, cout, pool in VGG:
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=100 if name == "conv1_1" else 1))
            self.pool_after.append(pool)
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout(0.5)  # element-wise, as Caffe's Dropout and cbst
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in (self.score_fr, self.score_pool4, self.score_pool3):  # Caffe's constant 0
            nn.init.zeros_(m.weight)
        for m in (self.upscore2, self.upscore_pool4, self.upscore8):
            with torch.no_grad():
                m.weight.copy_(bilinear_kernel(num_classes, m.kernel_size[0]))
            m.weight.requires_grad_(False)

    def forward(self, x):
        h = x
        for (name, _, _, _), pool in zip(VGG, self.pool_after):
            h = F.relu(getattr(self, name)(h))
            if pool:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
                if name == "conv3_3":
                    pool3 = h
                if name == "conv4_3":
                    pool4 = h
        h = self.drop(F.relu(self.fc6(h)))
        h = self.drop(F.relu(self.fc7(h)))
        h = self.score_fr(h)
        up2 = self.upscore2(h)
        s4 = self.score_pool4(pool4 * 0.01)[:, :, 5:5 + up2.shape[2], 5:5 + up2.shape[3]]
        up4 = self.upscore_pool4(up2 + s4)
        s3 = self.score_pool3(pool3 * 0.0001)[:, :, 9:9 + up4.shape[2], 9:9 + up4.shape[3]]
        h = self.upscore8(up4 + s3)
        return h[:, :, 31:31 + x.shape[2], 31:31 + x.shape[3]]

    def trunk_parameter_count(self):
        return sum(p.numel() for n, p in self.named_parameters() if n.startswith(("conv", "fc")))


# ------------------------------------------------------------------------------ ResNet-38 A1

class ResBlock38(nn.Module):
    """bn→relu→conv chains; projection = 1×1 conv of the first bn→relu output."""

    def __init__(self, cin, filters, stride, dilation_2a, dilation_2b, projection, dropout):
        super().__init__()
        self.n = len(filters)
        self.projection = projection
        c = cin
        for i, f in enumerate(filters):
            suffix = "2a" if i == 0 else "2b%d" % i
            three_by_three = self.n == 2 or i == 1  # 3-3 blocks, or the middle of 1-3-1
            dil = dilation_2a if i == 0 else dilation_2b
            setattr(self, "bn_branch" + suffix, nn.BatchNorm2d(c, eps=BN_EPS))
            setattr(self, "conv_branch" + suffix,
                    nn.Conv2d(c, f, 3 if three_by_three else 1, stride=stride if i == 0 else 1,
                              padding=dil if three_by_three else 0,
                              dilation=dil if three_by_three else 1, bias=False))
            c = f
        if projection:
            self.conv_branch1 = nn.Conv2d(cin, filters[-1], 1, stride=stride, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def stage(self, i):
        suffix = "2a" if i == 0 else "2b%d" % i
        return getattr(self, "bn_branch" + suffix), getattr(self, "conv_branch" + suffix)

    def forward(self, x):
        bn, conv = self.stage(0)
        a = F.relu(bn(x))
        shortcut = self.conv_branch1(a) if self.projection else x
        h = conv(a)
        for i in range(1, self.n):
            bn, conv = self.stage(i)
            h = F.relu(bn(h))
            if i == self.n - 1 and self.drop is not None:
                h = self.drop(h)
            h = conv(h)
        return shortcut + h


def a1_stride8_blocks():
    """(name, in, filters, stride, dilation_2a, dilation_2b, projection, dropout)."""
    blocks = []

    def level(lvl, count, cin, filters, stride, dil_first_2a, dil_first_2b, dil_rest):
        for i in range(count):
            name = "b%d" % lvl + ("" if i == 0 else "_%d" % i)
            blocks.append((name, cin if i == 0 else filters[-1], filters, stride if i == 0 else 1,
                           dil_first_2a if i == 0 else dil_rest, dil_first_2b if i == 0 else dil_rest,
                           i == 0, 0.0))

    level(2, 3, 64, [128, 128], 2, 1, 1, 1)
    level(3, 3, 128, [256, 256], 2, 1, 1, 1)
    level(4, 6, 256, [512, 512], 2, 1, 1, 1)
    level(5, 3, 512, [512, 1024], 1, 1, 2, 2)  # stride 2 → dilation 2 ("inc_dilate")
    blocks.append(("b6", 1024, [512, 1024, 2048], 1, 1, 4, True, 0.3))
    blocks.append(("b7", 2048, [1024, 2048, 4096], 1, 1, 4, True, 0.5))
    return blocks


class ResNet38(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.block_names = []
        for name, cin, filters, stride, d2a, d2b, proj, drop in a1_stride8_blocks():
            setattr(self, name, ResBlock38(cin, filters, stride, d2a, d2b, proj, drop))
            self.block_names.append(name)
        self.bn7 = nn.BatchNorm2d(4096, eps=BN_EPS)
        self.conv6a = nn.Conv2d(4096, 512, 3, padding=12, dilation=12)
        self.classifier = nn.Conv2d(512, num_classes, 3, padding=12, dilation=12)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        h = self.conv1a(x)
        for name in self.block_names:
            h = getattr(self, name)(h)
        h = F.relu(self.bn7(h))
        h = self.classifier(F.relu(self.conv6a(h)))
        return F.interpolate(h, size=x.shape[2:], mode="bilinear", align_corners=False)

    def freeze_batch_norm(self):
        """Running statistics in train mode, no update; γ/β stay trainable (CBST adaptation)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    def trunk_parameter_count(self):
        return sum(p.numel() for n, p in self.named_parameters()
                   if not n.startswith(("conv6a", "classifier")))


# ------------------------------------------------------------------------------ small-fcn

class SmallFCN(nn.Module):
    """models/small_fcn.cpp at width 16."""
    UNITS = [("conv1_1", 0, 1, 1), ("conv1_2", 1, 1, 1), ("conv2_1", 1, 2, 1),
             ("conv2_2", 2, 2, 1), ("conv3_1", 2, 4, 2), ("conv3_2", 4, 4, 4)]

    def __init__(self, num_classes, width=16):
        super().__init__()
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        for _, cin, cout, dil in self.UNITS:
            cin = 3 if cin == 0 else cin * width
            self.convs.append(nn.Conv2d(cin, cout * width, 3, padding=dil, dilation=dil, bias=False))
            self.bns.append(nn.BatchNorm2d(cout * width))
            nn.init.kaiming_normal_(self.convs[-1].weight, nonlinearity="relu")
        self.drop = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(4 * width, num_classes, 1)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            h = F.relu(bn(conv(h)))
            if i in (1, 3):
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
        h = self.classifier(self.drop(h))
        return F.interpolate(h, size=x.shape[2:], mode="bilinear", align_corners=False)

    def trunk_parameter_count(self):
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("classifier"))


# The PyTorch twins, by cbst's registered model name (models/segmentation_model.cpp). A model
# missing here (small-deeplabv3plus, until someone writes its twin) is refused by name.
MODELS = {"fcn8s-vgg16": FCN8sVGG16, "resnet38": ResNet38, "small-fcn": SmallFCN,
          "small-deeplabv3plus": SmallDeepLabV3Plus}

# ------------------------------------------------------------------------------ benchmark

def expected_counts(model_name, c):
    """cbst's counts (tests/models/models_test.cpp): (total, trunk); None when not known here."""
    if model_name == "fcn8s-vgg16":
        return 134260544 + 4867 * c + 288 * c * c, 134260544
    if model_name == "resnet38":
        return 105070912 + 4096 * 512 * 9 + 512 + 512 * c * 9 + c, 105070912
    return None


def sgd(model, lr):
    """The authors' groups: weights lr×1 wd×1, biases (and BN β) lr×2 wd×0."""
    weights, biases = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (biases if name.endswith(".bias") else weights).append(p)
    return torch.optim.SGD([{"params": weights, "lr": lr, "weight_decay": 5e-4},
                            {"params": biases, "lr": 2 * lr, "weight_decay": 0.0}],
                           lr=lr, momentum=0.9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fcn8s-vgg16", help="one of: " + ", ".join(MODELS))
    ap.add_argument("--mode", choices=["train", "infer"], default="train",
                    help="train: the SGD step; infer: forward in eval mode under no_grad")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--expect-parameters", type=int, default=0,
                    help="cbst's parameter count, for models whose count is not built in")
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", type=int, default=0,
                    help="after timing, run N more steps under torch.profiler and print the kernels by device time")
    a = ap.parse_args()
    if a.model not in MODELS:
        raise SystemExit("train_step_torch.py: error: no PyTorch twin of model '%s' (have: %s); add its "
                         "class to MODELS in tools/bench/train_step_torch.py" % (a.model, ", ".join(MODELS)))
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    dev = torch.device(a.device)
    model = MODELS[a.model](a.classes)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trunk = model.trunk_parameter_count()
    expected = expected_counts(a.model, a.classes)
    if expected is not None:
        want_total, want_trunk = expected
        counts_match = total == want_total and trunk == want_trunk
        print("parameters: %d (%d trainable), trunk %d; cbst: %d, trunk %d: %s"
              % (total, trainable, trunk, want_total, want_trunk, "equal" if counts_match else "DIFFERENT"))
    else:
        counts_match = a.expect_parameters == 0 or total == a.expect_parameters
        print("parameters: %d (%d trainable); cbst: %s: %s"
              % (total, trainable, a.expect_parameters or "not given",
                 "equal" if counts_match else "DIFFERENT"))

    model.to(dev).train()
    if a.model == "resnet38":
        model.freeze_batch_norm()
    if a.mode == "infer":
        model.eval()
    opt = sgd(model, a.lr)
    g = torch.Generator().manual_seed(7)
    images = (torch.rand(a.batch, 3, a.size, a.size, generator=g) * 4 - 2).to(dev)
    labels = torch.randint(0, a.classes, (a.batch, a.size, a.size), generator=g)
    labels[torch.rand(labels.shape, generator=g) < 0.1] = 255
    labels = labels.to(dev)

    def infer_step():
        with torch.no_grad():
            return model(images).float().mean().item()

    def train_step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(images), labels, ignore_index=255)
        value = loss.item()
        loss.backward()
        opt.step()
        return value

    step = train_step if a.mode == "train" else infer_step

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    first = step()
    if not math.isfinite(first):
        raise SystemExit("the first step's loss is %r; the step is wrong, not timing it" % first)
    for _ in range(1, a.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    last = first
    for _ in range(a.steps):
        last = step()
    sync()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    ms = seconds * 1e3 / a.steps
    ips = a.batch * a.steps / seconds

    if a.profile > 0:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(a.profile):
                step()
            sync()
        key = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        print("profile of %d steps (the device time of each kernel or op, summed):" % a.profile)
        print(prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=70))

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print("%s (PyTorch %s): %s, input %dx%d, batch %d, %d classes, %s, %d threads, cudnn.benchmark on, "
          "TF32 conv %s / matmul %s" % ("train step" if a.mode == "train" else "inference", torch.__version__,
                                        a.model, a.size, a.size, a.batch, a.classes, name, torch.get_num_threads(),
                                        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
    print("%-12s %6s %6s %6s %6s %10s %10s %12s %17s"
          % ("model", "device", "size", "batch", "steps", "ms/step", "images/s", "peak MiB", "loss first/last"))
    print("%-12s %6s %6d %6d %6d %10.1f %10.3f %12.0f %8.4f/%-8.4f"
          % (a.model, dev.type, a.size, a.batch, a.steps, ms, ips, peak / 2**20, first, last))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"benchmark": "train-step", "mode": a.mode, "implementation": "pytorch",
                       "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "model": a.model, "device": dev.type, "device_name": name, "size": a.size,
                       "batch": a.batch, "classes": a.classes, "steps": a.steps, "warmup": a.warmup,
                       "cudnn_benchmark": True, "tf32_conv": torch.backends.cudnn.allow_tf32,
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                       "parameters": total, "trainable_parameters": trainable, "trunk_parameters": trunk,
                       "parameters_match_cbst": counts_match, "ms_per_step": ms, "images_per_s": ips,
                       "peak_memory_bytes": peak, "peak_memory_kind": "max_memory_allocated",
                       "first_loss": first, "last_loss": last}, f)
            f.write("\n")
    if not math.isfinite(last):
        print("note: the loss became %r during the timed steps (random weights); lower --lr" % last)
    if not counts_match:
        raise SystemExit("parameter counts differ from cbst's: not the same network")


if __name__ == "__main__":
    main()
