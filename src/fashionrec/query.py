"""The query path: images -> vectors in an index's searched space.

decode -> crop (a box the shopper drew, or the garment when localisation is on) -> preprocess -> embed -> project
(through the index's trained head). The library, the HTTP API and evaluation all embed query photos here; product
photos added through the items API take the same path without the query-side crop and projection
(:meth:`QueryEncoder.features`), as ``fashionrec index`` embeds catalogue photos.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from fashionrec.embedders.protocol import Embedder
from fashionrec.feedback import Box, crop
from fashionrec.head import Head, project
from fashionrec.imageio import load_image
from fashionrec.localise import localise as crop_to_garment

ImageSource = str | os.PathLike[str] | bytes | Image.Image


class QueryEncoder:
    """One embedder and one head (None: raw backbone features are searched), with the query-side options."""

    def __init__(self, embedder: Embedder, head: Head | None = None, *, localise: bool = False) -> None:
        self.embedder = embedder
        self.head = head
        self.localise = localise
        """Crop query photos to the garment before embedding them (fashionrec.localise)."""

    def prepare(self, image: Image.Image, box: str | Box | None = None) -> Image.Image:
        """A decoded query photo as it is embedded: the region ``box`` (``x, y, w, h`` in pixels, or fractions
        when all are at most 1; fashionrec.feedback.box_pixels) when given, else cropped to the garment when
        ``localise`` is on."""
        if box is not None:
            return crop(image, box)
        return crop_to_garment(image) if self.localise else image

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded images -> the model's input batch."""
        return np.stack([self.embedder.preprocess(image) for image in images])

    def features(self, batch: np.ndarray) -> np.ndarray:
        """An input batch -> raw backbone features (what the index database stores)."""
        return self.embedder.embed_arrays(batch)

    def project(self, features: np.ndarray) -> np.ndarray:
        """Backbone features -> the vectors the store holds (through the trained head, when there is one)."""
        return project(features, self.head)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """An input batch -> vectors in the searched space."""
        return self.project(self.features(batch))

    def encode(self, images: Sequence[ImageSource], box: str | Box | None = None) -> np.ndarray:
        """Query images (path, bytes or PIL image) -> one searched-space row each; only the region ``box`` of each
        when given."""
        return self.embed(self.preprocess([self.prepare(load_image(image), box) for image in images]))
