"""What happens to an image before and after the network, without PyTorch.

Kept apart from the PyTorch embedder so that the ONNX Runtime path (and with it every query of a running
server) preprocesses exactly the same way without importing PyTorch at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from fashionrec import runtime
from fashionrec.imageio import load_image, pad_to_square


@dataclass(frozen=True)
class Preprocessor:
    """Pad to a white square (never stretch), resize to ``image_size`` and normalise -> float32 CHW.

    ``mean`` and ``std`` (per RGB channel, for pixels scaled to [0, 1]) are the normalisation the backbone's
    weights were trained with.
    """

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Non-RGB images are converted by :func:`fashionrec.imageio.load_image`, so alpha becomes white.

        The same as ``normalise(pixels(image))``; batch code calls those two itself, so that normalising is one
        NumPy operation per batch instead of one per image (same numbers, bit for bit).
        """
        return self.normalise(self.pixels(image))

    def pixels(self, image: Image.Image) -> np.ndarray:
        """Padded and resized, not yet normalised: uint8 (image_size, image_size, 3).

        Bicubic resampling in Pillow is area-aware when shrinking; ``reducing_gap`` makes shrinking a large
        phone photo about ten times cheaper with no visible difference.
        """
        if image.mode != "RGB":
            image = load_image(image)
        size = (self.image_size, self.image_size)
        return np.asarray(pad_to_square(image).resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 HWC pixels, one image (H, W, 3) or a batch (N, H, W, 3) -> normalised float32 CHW / NCHW."""
        # (x / 255 - mean) / std == x * scale + offset, per channel.
        std = np.asarray(self.std, dtype=np.float32)
        scale = 1.0 / (255.0 * std)
        offset = -np.asarray(self.mean, dtype=np.float32) / std
        values = pixels.astype(np.float32)
        values *= scale
        values += offset
        return np.ascontiguousarray(np.moveaxis(values, -1, -3), dtype=np.float32)

    def check_batch(self, batch: np.ndarray, name: str) -> None:
        """Refuse a batch of the wrong shape with a message naming the model, before the network sees it."""
        expected = (3, self.image_size, self.image_size)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"{name} expects a (N, {', '.join(map(str, expected))}) batch, got {batch.shape}")


def thread_count() -> int:
    """CPU threads one forward pass should use (fashionrec.runtime: set at the edge, default every usable CPU)."""
    return runtime.current().thread_count()
