"""Checksummed array files: named float32 arrays and a JSON header in one ``.npz``, verified on load and written
atomically (temp file, fsync, rename: a reader sees the old file or the new one, never half of one).

Layout: the arrays under their names, ``header`` (JSON text with ``format_version``) and ``sha256`` (over the header
text and every array's name, shape and float32 bytes, in name order). The projection head (``head.npz``) and the
text alignment (``text/alignment.npz``) are such files; a corrupt, truncated or foreign one is an
:class:`~fashionrec.errors.IndexFormatError` naming what to re-run, never a crash or silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.atomic import write_atomically
from fashionrec.errors import IndexFormatError

HEADER = "header"
CHECKSUM = "sha256"


def checksum(header_json: str, arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of a header's JSON text and the arrays (name, shape, float32 bytes), in name order."""
    digest = hashlib.sha256(header_json.encode())
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(str(arrays[name].shape).encode())
        digest.update(np.ascontiguousarray(arrays[name], dtype=np.float32).tobytes())
    return digest.hexdigest()


def save(path: Path, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray], version: int) -> Path:
    """Write ``arrays`` (as float32) and ``header`` (with ``format_version`` = ``version``) to ``path``."""
    header_json = json.dumps({**header, "format_version": version}, sort_keys=True)
    floats = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in arrays.items()}
    buffer = io.BytesIO()
    contents: dict[str, Any] = {HEADER: np.array(header_json), CHECKSUM: np.array(checksum(header_json, floats)),
                                **floats}
    np.savez(buffer, **contents)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, buffer.getvalue())


def read_npz(path: Path, what: str, remedy: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; an unreadable one is an :class:`IndexFormatError` saying ``remedy``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.array(data[name]) for name in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise IndexFormatError(f"{path} is not a readable {what} ({exc}); {remedy}") from None


def load(path: Path, version: int, what: str, remedy: str,
         arrays: dict[str, np.ndarray] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header (without ``format_version``) and arrays of a file :func:`save` wrote in ``version``, verified
    (``arrays``: the file's arrays when the caller has read them already)."""
    arrays = dict(read_npz(path, what, remedy) if arrays is None else arrays)
    try:
        header_json, stored = str(arrays.pop(HEADER)), str(arrays.pop(CHECKSUM))
        header = json.loads(header_json)
    except (KeyError, ValueError):
        raise IndexFormatError(f"{path} is not a readable {what}; {remedy}") from None
    if checksum(header_json, arrays) != stored:
        raise IndexFormatError(f"{path}: checksum mismatch (file corrupt); {remedy}")
    if not isinstance(header, dict) or header.get("format_version") != version:
        found = header.get("format_version") if isinstance(header, dict) else "?"
        raise IndexFormatError(f"{path}: {what} format version {found}, this fashionrec reads {version}; {remedy}")
    header.pop("format_version")
    return header, arrays
