"""ResNet-50 that loads torchvision's ImageNet ``state_dict`` files, without needing torchvision.

No wheel ships ResNet-50 weights and nothing may be downloaded at run time, so the user supplies the
file. The module below reproduces torchvision's parameter names exactly (ResNet v1.5: the stride sits
in the 3x3 convolution), so ``resnet50-*.pth`` loads strictly once its ``fc`` classifier is dropped.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from fashionrec.embedders.base import IMAGENET_MEAN, IMAGENET_STD, TorchEmbedder, load_weights
from fashionrec.errors import FashionrecError

FEATURE_DIM = 2048
WEIGHTS_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"

_LAYERS = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride) per stage
_EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, plus the identity or a projected shortcut."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * _EXPANSION
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50(nn.Module):
    """ResNet-50 feature extractor: normalised (N, 3, H, W) -> (N, 2048) average-pooled features.

    Its ``state_dict`` is torchvision's ``resnet50`` one without ``fc.weight`` and ``fc.bias``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers: list[nn.Sequential] = []
        cin = 64
        for width, blocks, stride in _LAYERS:
            layer = []
            for block in range(blocks):
                layer.append(Bottleneck(cin, width, stride if block == 0 else 1))
                cin = width * _EXPANSION
            layers.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        features: torch.Tensor = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return features.mean(dim=(2, 3))


def build(name: str, *, image_size: int, weights: str | os.PathLike[str] | None) -> TorchEmbedder:
    """ResNet-50 with the torchvision-format weights in ``weights``, which is required."""
    if weights is None:
        raise FashionrecError(
            f"{name} needs ImageNet weights in torchvision format, which are not bundled: download "
            f"{WEIGHTS_URL} (or any torchvision resnet50-*.pth) and pass its path as weights"
        )
    module = ResNet50()
    load_weights(module, weights, model_name=name, ignore_prefixes=("fc.",))
    return TorchEmbedder(name, module, dim=FEATURE_DIM, image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
