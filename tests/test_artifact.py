"""fashionrec.artifact: the one checksummed array format (head and text alignment files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec import artifact
from fashionrec.errors import IndexFormatError

ARRAYS = {"w0": np.arange(6, dtype=np.float32).reshape(2, 3), "b0": np.ones(3, np.float32)}


def test_round_trip_keeps_header_and_arrays(tmp_path: Path) -> None:
    path = artifact.save(tmp_path / "sub" / "a.npz", {"note": "x", "ids": ["1", "2"]}, ARRAYS, version=3)
    header, arrays = artifact.load(path, 3, "test file", "make it again")
    assert header == {"note": "x", "ids": ["1", "2"]}
    assert set(arrays) == set(ARRAYS) and all(np.array_equal(arrays[k], ARRAYS[k]) for k in ARRAYS)
    assert not list(tmp_path.glob("sub/*.tmp*"))  # written through a temporary file, renamed into place


@pytest.mark.parametrize(("damage", "message"), [
    ("array", "checksum mismatch"), ("header", "checksum mismatch"), ("version", "format version 3"),
    ("foreign", "not a readable test file"), ("bytes", "not a readable test file"),
])
def test_damage_is_one_index_format_error_saying_what_to_do(tmp_path: Path, damage: str, message: str) -> None:
    path = artifact.save(tmp_path / "a.npz", {"note": "x"}, ARRAYS, version=3)
    contents = dict(np.load(path))
    if damage == "array":
        contents["w0"] = contents["w0"] + 1
    elif damage == "header":
        contents["header"] = np.array(str(contents["header"]).replace('"x"', '"y"'))
    elif damage == "foreign":
        contents = {"something": np.arange(3)}
    if damage == "bytes":
        path.write_bytes(b"not an npz")
    else:
        np.savez(path, **contents)
    with pytest.raises(IndexFormatError, match=message) as refused:
        artifact.load(path, 4 if damage == "version" else 3, "test file", "make it again")
    assert "make it again" in str(refused.value)
