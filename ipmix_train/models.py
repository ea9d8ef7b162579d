"""Models by name: small CIFAR-style ResNets for 32 px experiments, else torchvision's.

``cifar_resnet8`` / ``cifar_resnet14`` / ``cifar_resnet20`` are the 6n+2-layer ResNets of
He et al. (2016, section 4.2) for 32 px inputs: a 3x3 stem, three stages of ``n`` basic
blocks at widths w, 2w, 4w (stride 2 between stages, projection shortcuts), global average
pooling and a linear classifier. ``torchvision``'s ResNets downsample 4x in the stem and
are slow and weak at 32 px; these run at ~100+ img/s per CPU core for ResNet-8.

    model = build_model("cifar_resnet8", num_classes=10)   # or "resnet50", ...
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# name -> (blocks per stage n, base width w)
CIFAR_RESNETS = {"cifar_resnet8": (1, 16), "cifar_resnet14": (2, 16), "cifar_resnet20": (3, 16)}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32 px images; input float NCHW, output logits ``[B, classes]``."""

    def __init__(self, n: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def model_names() -> list[str]:
    """Every name :func:`build_model` accepts."""
    import torchvision

    return sorted(CIFAR_RESNETS) + torchvision.models.list_models(module=torchvision.models)


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier: a CIFAR ResNet by name, else a torchvision model
    (``ipmix_train.engine.build_model``). Unknown names raise ``ValueError``."""
    if arch in CIFAR_RESNETS:
        n, width = CIFAR_RESNETS[arch]
        return CifarResNet(n, width, num_classes)
    from .engine import build_model as torchvision_model

    return torchvision_model(arch, num_classes)
