"""The one PyTorch implementation that all backbones share (what every embedder offers: fashionrec.embedders.protocol).

The backbones differ only in the ``nn.Module`` they build and the weights they load; preprocessing,
batching, threading and normalisation live here once, so every model treats images identically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from fashionrec.embedders.preprocess import Preprocessor, thread_count
from fashionrec.errors import FashionrecError
from fashionrec.vectors import NORM_EPS

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def configure_threads() -> int:
    """Set PyTorch's CPU threads to :func:`~fashionrec.embedders.preprocess.thread_count` and return it."""
    torch.set_num_threads(thread_count())
    return torch.get_num_threads()


def load_weights(
    module: nn.Module, path: str | os.PathLike[str], *, model_name: str, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Load a ``state_dict`` file into ``module`` with every key and shape matching exactly.

    Keys starting with ``ignore_prefixes`` (a classifier we do not use) are dropped first. Loading is
    strict because a silently half-loaded backbone still produces plausible-looking vectors, just bad
    ones. ``weights_only`` loading means a hostile file cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise FashionrecError(f"weights file for {model_name} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types (EOFError, KeyError, RuntimeError, pickle's)
        # for a file that is not a checkpoint; each is the same user error
        raise FashionrecError(f"cannot read weights file {path} for {model_name}: {exc}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FashionrecError(f"weights file {path} is not a plain state_dict of tensors")
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    expected = module.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong_shape = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if keys
        )
        raise FashionrecError(f"weights file {path} does not fit {model_name} ({details})")
    module.load_state_dict(state, strict=True)


class TorchEmbedder:
    """An :class:`Embedder` around any ``nn.Module`` mapping normalised NCHW images to (N, dim) features.

    ``mean`` and ``std`` (per RGB channel, for pixels scaled to [0, 1]) are the normalisation the
    backbone's weights were trained with; they are public so an exported copy can be fed the same way.
    """

    backend = "torch"
    numerics = "fp32"  # what the network computes in (see OnnxEmbedder.numerics)

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        dim: int,
        image_size: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        configure_threads()
        self.name = name
        self.dim = dim
        self.image_size = image_size
        self.mean = mean
        self.std = std
        self.preprocess = Preprocessor(image_size, mean, std)
        self._module = module.eval()

    def __repr__(self) -> str:
        return f"TorchEmbedder(name={self.name!r}, dim={self.dim}, image_size={self.image_size})"

    def torch_module(self) -> nn.Module:
        """The backbone in eval mode: normalised (N, 3, S, S) float32 -> (N, dim) features, not unit length.

        For ONNX export or for stacking a trained projection head on top; remember to L2-normalise
        the output of whatever you build from it, as :meth:`embed_arrays` does.
        """
        return self._module

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Run the backbone on a preprocessed batch and L2-normalise each row -> float32 (N, dim)."""
        self.preprocess.check_batch(batch, self.name)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            features = nn.functional.normalize(self._module(inputs).float(), dim=1, eps=NORM_EPS)
        return features.numpy()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed ``images`` as one batch; callers with thousands of images should chunk them."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_arrays(np.stack([self.preprocess(image) for image in images]))
