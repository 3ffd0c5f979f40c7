"""Opening an index for recommendations: vectors and head must agree, damaged or foreign files are clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import faiss
import pytest

from fashionrec.catalog_db import DB_NAME
from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.head import Head
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import INDEX_FILE, MAGIC
from tests.conftest import DEMO_QUERIES, FAST_MODEL, assert_one_clear_error, foreign_sqlite, run_cli


def test_open_refuses_vectors_published_with_another_head(
    trained_index: Path, tmp_path: Path, catalog_120: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    other = Head.load(index_dir)
    other.weights["b2"] = other.weights["b2"] + 1
    other.save(index_dir)  # a new head whose vectors were never published (train killed between the two writes)
    with pytest.raises(IndexFormatError, match="re-run `fashionrec index`"):
        Recommender.open(index_dir)
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, progress=False)  # nothing to embed; re-publishes
    with Recommender.open(index_dir) as rec:
        assert rec.store.model is not None and rec.store.model.head == other.fingerprint


@pytest.fixture(scope="module")
def good_index(catalog_120: Path, tmp_path_factory: pytest.TempPathFactory, fast_embedder: Embedder) -> Path:
    index_dir = tmp_path_factory.mktemp("good-index")
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, embedder=fast_embedder, progress=False)
    return index_dir


def _rewrite_header(path: Path, change: Callable[[dict[str, object]], None], payload: bytes | None = None) -> None:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(data[start : start + length])
    body = data[start + length :] if payload is None else payload
    header["payload_sha256"] = hashlib.sha256(body).hexdigest()
    change(header)
    raw = json.dumps(header).encode()
    path.write_bytes(MAGIC + struct.pack("<Q", len(raw)) + raw + body)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_metadata_page(path: Path) -> None:
    """Overwrite a stored product name with bytes that are not UTF-8: the header and schema stay intact, the damage
    shows only when the rows are read."""
    data = bytearray(path.read_bytes())
    at = data.find(b"productDisplayName")
    assert at > 0
    data[at : at + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))


def _set_schema(path: Path, version: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE settings SET value=? WHERE key='schema_version'", (version,))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "faiss-truncated": (lambda d: (d / INDEX_FILE).write_bytes((d / INDEX_FILE).read_bytes()[:-5000]), "checksum"),
    "faiss-bit-flip": (lambda d: _flip(d / INDEX_FILE, -100), "checksum"),
    "faiss-header-length": (lambda d: _flip(d / INDEX_FILE, len(MAGIC) + 3), "damaged header"),
    "faiss-empty": (lambda d: (d / INDEX_FILE).write_bytes(b""), "not a fashionrec FAISS index"),
    "faiss-html": (lambda d: (d / INDEX_FILE).write_bytes(b"<html>502 Bad Gateway</html>"), "not a fashionrec"),
    "faiss-foreign": (lambda d: faiss.write_index(faiss.IndexFlatIP(8), str(d / INDEX_FILE)), "not a fashionrec"),
    "faiss-future-version": (
        lambda d: _rewrite_header(d / INDEX_FILE, lambda h: h.update(format_version=99)), "format version 99"),
    "faiss-foreign-payload": (
        lambda d: _rewrite_header(d / INDEX_FILE, lambda h: None, payload=b"not faiss"), "unreadable index content"),
    "faiss-missing-ids": (lambda d: _rewrite_header(d / INDEX_FILE, lambda h: h.pop("ids")), "unreadable index"),
    "faiss-unknown-id": (
        lambda d: _rewrite_header(d / INDEX_FILE, lambda h: h.update(ids=["ghost"] + h["ids"][1:])), "disagree"),
    "faiss-missing": (lambda d: (d / INDEX_FILE).unlink(), "no vector index"),
    "sqlite-garbage": (lambda d: (d / DB_NAME).write_bytes(b"garbage" * 1000), "not a fashionrec index database"),
    "sqlite-empty": (lambda d: (d / DB_NAME).write_bytes(b""), "not a fashionrec index database"),
    "sqlite-truncated": (
        lambda d: (d / DB_NAME).write_bytes((d / DB_NAME).read_bytes()[:30000]), "not a fashionrec index database"),
    "sqlite-foreign": (lambda d: foreign_sqlite(d / DB_NAME), "not a fashionrec index database"),
    "sqlite-future-schema": (lambda d: _set_schema(d / DB_NAME, "99"), "schema version 99"),
    "sqlite-garbled-schema": (lambda d: _set_schema(d / DB_NAME, "abc"), "schema version abc"),
    "sqlite-damaged-page": (lambda d: _damage_metadata_page(d / DB_NAME), "damaged"),
    "sqlite-missing": (lambda d: (d / DB_NAME).unlink(), "no index"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_index_is_a_clear_error(case: str, good_index: Path, tmp_path: Path, fast_embedder: Embedder) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(good_index, index_dir)
    damage, message = DAMAGE[case]
    damage(index_dir)
    with pytest.raises(FashionrecError, match=message) as caught:
        Recommender.open(index_dir, embedder=fast_embedder)
    assert isinstance(caught.value, IndexFormatError) or message == "disagree"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["faiss-bit-flip", "faiss-foreign", "sqlite-foreign", "sqlite-damaged-page"])
def test_damaged_index_through_the_cli_is_one_error_line(case: str, good_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(good_index, index_dir)
    damage, message = DAMAGE[case]
    damage(index_dir)
    query = str(min(DEMO_QUERIES.glob("*.jpg")))
    assert_one_clear_error(run_cli("recommend", query, "--index-dir", str(index_dir)), message)


def test_ranking_options_are_one_frozen_config_that_queries_read(live_rec: Recommender) -> None:
    from dataclasses import FrozenInstanceError, replace

    before = live_rec.ranking
    live_rec.consensus_weight = 0.5  # an attribute set replaces the config; the old one is unchanged
    assert live_rec.ranking == replace(before, consensus_weight=0.5) and live_rec.ranking is not before
    with pytest.raises(FrozenInstanceError):
        live_rec.ranking.hybrid_weight = 1.0  # type: ignore[misc]
    live_rec.ranking = replace(live_rec.ranking, localise=True)
    assert live_rec.localise is True and live_rec.encoder.localise is True  # the query encoder follows it


def test_pinned_copies_share_the_networks_they_open(demo_index: Path) -> None:
    # a server pins one copy per request: a network opened by one copy (or the recommender) serves them all
    with Recommender.open(demo_index) as rec:
        first, second = rec.pinned(), rec.pinned()
        classifier = first.kind_classifier
        assert classifier is not None and second.kind_classifier is classifier and rec.kind_classifier is classifier
        assert second.localiser is first.localiser is rec.localiser
        assert rec.garment_classes is first.localiser.classes
        rec.kind_classifier = None  # switched off on the recommender: off for the copies too
        assert first.kind_classifier is None
