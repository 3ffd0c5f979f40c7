"""The fashion model's ONNX export, shipped beside its weights: indexing and queries with the default model never
import PyTorch nor export anything, even in a fresh index folder.

``fashionrec/weights/fashion-lite0.onnx`` is exactly what :func:`fashionrec.embedders.onnx_embedder.export` makes of
the shipped ``fashion-lite0.pt`` at its native input size, after the same parity check against PyTorch; its card
``fashion-lite0.onnx.json`` records the export's SHA-256, the SHA-256 of the weights it was made from, the input
size and the export version. It is used only while all of them match (checked on every load); otherwise the model
is exported from the weights as for any other backbone (slower, same vectors). After the weights change, remake it:

    python -m fashionrec.embedders.packaged
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

from fashionrec.atomic import write_atomically

logger = logging.getLogger(__name__)

MODEL_NAME = "fashion"
WEIGHTS_FILE = "fashion-lite0.pt"  # fashionrec.embedders.fashion.WEIGHTS_FILE (not imported: it loads PyTorch)
WEIGHTS_CARD = "fashion-lite0.json"  # fashionrec.embedders.fashion.CARD_FILE
ONNX_FILE = "fashion-lite0.onnx"
ONNX_CARD = "fashion-lite0.onnx.json"


def weights_folder() -> Path:
    return Path(str(resources.files("fashionrec") / "weights"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def packaged_onnx(name: str, image_size: int, weights: str | None, folder: Path | None = None) -> bytes | None:
    """The shipped export's bytes when it is the model ``name`` at ``image_size`` with the shipped weights (no
    ``weights`` file of the user's), made from exactly the weights installed beside it; else None."""
    from fashionrec.embedders.onnx_embedder import EXPORT_VERSION

    if name != MODEL_NAME or weights is not None:
        return None
    folder = folder or weights_folder()
    try:
        card = json.loads((folder / ONNX_CARD).read_text())
        if card.get("image_size") != image_size or card.get("export_version") != EXPORT_VERSION:
            return None
        if card.get("weights_sha256") != _sha256(folder / WEIGHTS_FILE):
            return None
        data = (folder / ONNX_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != card.get("sha256"):
        logger.warning("%s does not match its recorded checksum; exporting the model from its weights instead",
                       folder / ONNX_FILE)
        return None
    return data


def write_packaged(folder: Path | None = None) -> Path:
    """Export the shipped fashion weights at their native input size, check parity with PyTorch, and write the
    export and its card into ``folder`` (default: the package's weights folder). Needs PyTorch."""
    from fashionrec.embedders import create_embedder, resolve_image_size
    from fashionrec.embedders.onnx_embedder import EXPORT_VERSION, PARITY_MIN_COSINE, OnnxEmbedder, export, parity
    from fashionrec.errors import FashionrecError

    folder = folder or weights_folder()
    size = resolve_image_size(MODEL_NAME, None)
    reference = create_embedder(MODEL_NAME, image_size=size, weights=folder / WEIGHTS_FILE)
    data = export(reference)
    cosine = parity(reference, OnnxEmbedder.load(data))
    if cosine < PARITY_MIN_COSINE:
        raise FashionrecError(f"ONNX export of {MODEL_NAME} disagrees with PyTorch (cosine {cosine:.6f})")
    write_atomically(folder / ONNX_FILE, data)
    card = {"sha256": hashlib.sha256(data).hexdigest(), "weights_sha256": _sha256(folder / WEIGHTS_FILE),
            "image_size": size, "export_version": EXPORT_VERSION, "parity_min_cosine": round(cosine, 7)}
    write_atomically(folder / ONNX_CARD, (json.dumps(card, indent=1) + "\n").encode())
    return folder / ONNX_FILE


if __name__ == "__main__":
    print(write_packaged())
