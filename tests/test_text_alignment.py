"""The text alignment artifact: it round-trips, and damage is an IndexFormatError."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionrec.errors import IndexFormatError
from fashionrec.text.alignment import Alignment, alignment_path


def test_artifact_round_trips_and_damage_is_an_index_format_error(demo_text_index: Path, tmp_path: Path) -> None:
    original = Alignment.load(demo_text_index)
    original.save(tmp_path)
    assert Alignment.load(tmp_path).checksum == original.checksum
    path = alignment_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError):
        Alignment.load(tmp_path)
    path.write_bytes(b"not an npz")
    with pytest.raises(IndexFormatError, match="train-text"):
        Alignment.load(tmp_path)
