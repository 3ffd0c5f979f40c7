"""A joint image+text backbone from local CLIP weights (transformers ``CLIPModel`` format, e.g. FashionCLIP).

``--model clip --weights DIR/model.safetensors`` names a file inside the saved model directory (so the weights
fingerprint recorded with the index covers the actual weights); the directory is loaded with
``CLIPModel.from_pretrained`` offline. Images are embedded by the vision tower and its projection; text queries
use the text tower of the same model (``clip_text_embedder``), so text search needs no alignment training.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionrec.embedders.base import TorchEmbedder, configure_threads
from fashionrec.errors import FashionrecError
from fashionrec.manifest import Manifest

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
MODEL_NAME = "clip"
MAX_TOKENS = 77


def is_joint(model: Manifest) -> bool:
    """True when an index's recorded model embeds text too (its vectors are searched by text directly)."""
    return model.name == MODEL_NAME


def load_clip(weights: str | os.PathLike[str] | None) -> Any:
    """The ``CLIPModel`` in the directory holding ``weights``, in eval mode, without any network access."""
    if weights is None:
        raise FashionrecError("model clip needs weights: the model.safetensors file of a saved transformers CLIPModel directory")
    folder = Path(weights).parent
    if not (folder / "config.json").is_file():
        raise FashionrecError(f"{folder} is not a saved CLIPModel directory (no config.json beside {Path(weights).name})")
    from transformers import CLIPModel

    try:
        return CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise FashionrecError(f"cannot load CLIP weights from {folder}: {exc}") from None


class _VisionTower(nn.Module):
    """Normalised pixels -> projected image features (any input size: position embeddings are interpolated)."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.vision_model = clip.vision_model
        self.visual_projection = clip.visual_projection

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixels, interpolate_pos_encoding=True).pooler_output
        return self.visual_projection(pooled)


def build(name: str, *, image_size: int, weights: str | os.PathLike[str] | None) -> TorchEmbedder:
    clip = load_clip(weights)
    dim = int(clip.config.projection_dim)
    return TorchEmbedder(name, _VisionTower(clip), dim=dim, image_size=image_size, mean=CLIP_MEAN, std=CLIP_STD)


def clip_text_embedder(model: Manifest) -> Callable[[list[str]], np.ndarray]:
    """Texts -> unit vectors in the image space of the CLIP weights an index was built with."""
    from transformers import AutoTokenizer

    from fashionrec.modelspec import ModelSpec

    spec = ModelSpec.from_manifest(model)
    if spec.weights_changed(model):
        raise FashionrecError(f"the CLIP weights {spec.weights} changed since the index was built; re-run `fashionrec index`")
    clip = load_clip(spec.weights)
    tokenizer = AutoTokenizer.from_pretrained(Path(str(spec.weights)).parent, local_files_only=True)
    configure_threads()

    def embed(texts: list[str]) -> np.ndarray:
        tokens = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            pooled = clip.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
            features = nn.functional.normalize(clip.text_projection(pooled).float(), dim=1)
        return features.numpy()

    return embed
