"""PyTorch twin of cbst's `small-deeplabv3plus` (models/small_deeplabv3plus.h), for the
side-by-side benchmarks and for checking our forward pass against PyTorch's.

Parameter names equal cbst's, so a state_dict written by one loads into the other:
  stem1.conv.weight, stem1.bn.{weight,bias,running_mean,running_var},
  layer1.conv1.conv.weight, ..., layer2.shortcut.conv.weight, aspp.branch0..3, aspp.pool,
  aspp.project, decoder.skip, decoder.conv1, decoder.conv2, classifier.{weight,bias}.
Developer-time only: the project never needs Python to build, run or test.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

ASPP_DILATIONS = (3, 6, 9)
ASPP_WIDTH = 64


class ConvBn(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, dilation=1):
        super().__init__()
        pad = 0 if k == 1 else dilation
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, dilation):
        super().__init__()
        self.conv1 = ConvBn(cin, cout, 3, stride, dilation)
        self.conv2 = ConvBn(cout, cout, 3, 1, dilation)
        self.shortcut = ConvBn(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x)))
        return F.relu(h + (self.shortcut(x) if self.shortcut is not None else x))


class Aspp(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch0 = ConvBn(cin, ASPP_WIDTH, 1)
        for i, d in enumerate(ASPP_DILATIONS):
            setattr(self, f"branch{i + 1}", ConvBn(cin, ASPP_WIDTH, 3, 1, d))
        self.pool = nn.Conv2d(cin, ASPP_WIDTH, 1, bias=True)
        self.project = ConvBn((len(ASPP_DILATIONS) + 2) * ASPP_WIDTH, ASPP_WIDTH, 1)

    def forward(self, x):
        branches = [F.relu(self.branch0(x))]
        branches += [F.relu(getattr(self, f"branch{i + 1}")(x)) for i in range(len(ASPP_DILATIONS))]
        pooled = F.relu(self.pool(x.mean(dim=(2, 3), keepdim=True)))
        branches.append(F.interpolate(pooled, size=x.shape[2:], mode="bilinear", align_corners=False))
        return F.relu(self.project(torch.cat(branches, 1)))


class Decoder(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.skip = ConvBn(32, 16, 1)
        self.conv1 = ConvBn(ASPP_WIDTH + 16, 64)
        self.conv2 = ConvBn(64 + 24, 32)


class SmallDeepLabV3Plus(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.stem1 = ConvBn(3, 24, 3, 2)
        self.stem2 = ConvBn(24, 32)
        self.layer1 = BasicBlock(32, 32, 1, 1)
        self.layer2 = BasicBlock(32, 64, 2, 1)
        self.layer3 = BasicBlock(64, 96, 1, 2)
        self.layer4 = BasicBlock(96, 96, 1, 4)
        self.aspp = Aspp(96)
        self.decoder = Decoder(num_classes)
        self.classifier = nn.Conv2d(32, num_classes, 1)
        self.dropout = nn.Dropout(0.1)

    def logits(self, x):
        fine = F.relu(self.stem1(x))
        h = F.relu(self.stem2(fine))
        h = F.max_pool2d(h, 3, 2, 1)
        skip = self.layer1(h)
        h = self.layer4(self.layer3(self.layer2(skip)))
        a = self.dropout(self.aspp(h))
        a = F.interpolate(a, size=skip.shape[2:], mode="bilinear", align_corners=False)
        low = F.relu(self.decoder.skip(skip))
        h = F.relu(self.decoder.conv1(torch.cat([a, low], 1)))
        h = F.interpolate(h, size=fine.shape[2:], mode="bilinear", align_corners=False)
        h = F.relu(self.decoder.conv2(torch.cat([h, fine], 1)))
        return self.classifier(h)

    def forward(self, x):
        y = self.logits(x)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)

    def trunk_parameter_count(self):
        """Everything but the classifier (the part that does not depend on the class count)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("classifier."))


def parameter_count(num_classes):
    """cbst's count (tests/models/models_test.cpp) for the cross-check."""
    return sum(p.numel() for p in SmallDeepLabV3Plus(num_classes).parameters())
