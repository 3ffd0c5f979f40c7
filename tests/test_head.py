"""The projection head: applied in NumPy, saved and loaded, and damaged or foreign head files refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fashionrec.errors import IndexFormatError
from fashionrec.head import HEAD_FILE, Head


def test_head_applies_in_numpy_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(size=(8, 6)), "b1": rng.normal(size=6), "w2": rng.normal(size=(6, 4)),
               "b2": rng.normal(size=4)}
    head = Head({k: v.astype(np.float32) for k, v in weights.items()}, {"holdout_ids": ["a", "b"]})
    out = head.apply(rng.normal(size=(5, 8)))
    assert out.shape == (5, 4) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    x = rng.normal(size=(2, 8))
    blended = Head(head.weights, {"backbone_weight": 2.0})  # cosine = (4 backbone cosine + MLP cosine) / 5
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = (4 * raw[0] @ raw[1] + head.apply(x)[0] @ head.apply(x)[1]) / 5
    assert blended.apply(x)[0] @ blended.apply(x)[1] == pytest.approx(expected, abs=1e-5)
    head.save(tmp_path)
    loaded = Head.load(tmp_path)
    assert loaded.fingerprint == head.fingerprint and loaded.holdout_ids == ["a", "b"]
    np.testing.assert_array_equal(loaded.apply(np.eye(8)), head.apply(np.eye(8)))


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign"])
def test_damaged_or_foreign_head_file_is_an_index_format_error(tmp_path: Path, damage: str) -> None:
    head = Head({"w1": np.ones((4, 3), np.float32), "b1": np.zeros(3, np.float32), "w2": np.ones((3, 2), np.float32),
                 "b2": np.zeros(2, np.float32)})
    path = head.save(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":  # a weight changed inside a valid archive: only the checksum can tell
        arrays = dict(np.load(path))
        arrays["w1"] = arrays["w1"] * 2
        np.savez(path, **arrays)
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        np.savez(path, something=np.arange(3))
    with pytest.raises(IndexFormatError):
        Head.load(tmp_path)


def test_a_version_1_head_file_still_loads_with_the_same_fingerprint(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    weights = {"w1": rng.normal(size=(8, 6)), "b1": rng.normal(size=6), "w2": rng.normal(size=(6, 4)),
               "b2": rng.normal(size=4)}
    head = Head({k: v.astype(np.float32) for k, v in weights.items()}, {"holdout_ids": ["a"], "backbone_weight": 0.0})
    head.save(tmp_path / "new")
    assert "header" in np.load(tmp_path / "new" / HEAD_FILE).files  # written in the shared artifact format
    # what fashionrec wrote before (format 1): meta as JSON bytes and a checksum over the weights in layer order
    meta = json.dumps({**head.meta, "format_version": 1}, sort_keys=True).encode()
    digest = hashlib.sha256(meta)
    for name in ("w1", "b1", "w2", "b2"):
        digest.update(name.encode() + str(head.weights[name].shape).encode() + head.weights[name].tobytes())
    (tmp_path / "old").mkdir()
    np.savez(tmp_path / "old" / HEAD_FILE, meta=np.frombuffer(meta, np.uint8), sha256=np.array(digest.hexdigest()),
             **head.weights)
    old, new = Head.load(tmp_path / "old"), Head.load(tmp_path / "new")
    assert old.fingerprint == new.fingerprint == head.fingerprint and old.meta == new.meta == head.meta
    np.testing.assert_array_equal(old.apply(np.eye(8)), new.apply(np.eye(8)))
    changed = dict(np.load(tmp_path / "old" / HEAD_FILE))
    changed["w2"] = changed["w2"] * 2
    np.savez(tmp_path / "old" / HEAD_FILE, **changed)
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        Head.load(tmp_path / "old")
