"""``fashion``: our own fashion-tuned backbone, shipped inside the package (no download).

EfficientNet-Lite0 fine-tuned on the shared Myntra catalogue and real shoppers' photos by
``fashionrec train-backbone`` (:mod:`fashionrec.backbone_train`), followed by a linear projection to a compact
256-d embedding. Inference only lives here; the training recipe, its data and its provenance are described in
``fashionrec/weights/README.md`` beside the weights file, whose checksum is checked on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from fashionrec.embedders.base import TorchEmbedder, load_weights
from fashionrec.embedders.efficientnet import FEATURE_DIM, LITE_MEAN, LITE_STD, EfficientNetLite
from fashionrec.errors import FashionrecError

WEIGHTS_FILE = "fashion-lite0.pt"
CARD_FILE = "fashion-lite0.json"  # checksum, training config and provenance of WEIGHTS_FILE


class FashionNet(nn.Module):
    """EfficientNet-Lite0 trunk -> linear projection: normalised (N, 3, S, S) -> (N, dim), not unit length."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.trunk = EfficientNetLite(1.0, 1.0)
        self.proj = nn.Linear(FEATURE_DIM, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(self.trunk(x))
        return out


def packaged_weights(folder: Path | None = None) -> Path:
    """Path of the shipped weights (in ``folder``, default the package's), after checking their SHA-256 against
    the card shipped with them."""
    folder = folder or Path(str(resources.files("fashionrec") / "weights"))
    path, card = folder / WEIGHTS_FILE, folder / CARD_FILE
    if not path.is_file() or not card.is_file():
        raise FashionrecError(f"the fashion model's weights are not installed ({path}); reinstall fashionrec")
    expected = json.loads(card.read_text())["sha256"]
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise FashionrecError(f"the fashion model's weights {path} do not match their recorded checksum")
    return path


def card() -> dict[str, object]:
    """The shipped weights' card: checksum, dimension, input size, training config and provenance."""
    data: dict[str, object] = json.loads((resources.files("fashionrec") / "weights" / CARD_FILE).read_text())
    return data


def build(name: str, *, image_size: int, weights: str | os.PathLike[str] | None) -> TorchEmbedder:
    """The fashion backbone with the shipped weights, or those in ``weights`` (a ``state_dict`` of the same shape)."""
    path = Path(weights) if weights else packaged_weights()
    try:  # the output dimension is read from the file; load_weights reports a file that is not ours
        state = torch.load(path, map_location="cpu", weights_only=True)
        dim = int(state["proj.weight"].shape[0])
    except Exception:  # noqa: BLE001 -- torch raises many types for a file that is not a checkpoint
        dim = 256
    module = FashionNet(dim)
    load_weights(module, path, model_name=name)
    return TorchEmbedder(name, module, dim=dim, image_size=image_size, mean=LITE_MEAN, std=LITE_STD)
