"""fashionrec.manifest: the typed, versioned description of what made an index's vectors, read and written in one
place; old (unversioned) descriptions read as they are, newer ones are refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import IndexFormatError
from fashionrec.indexing import index_catalog
from fashionrec.manifest import MANIFEST_VERSION, Manifest
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import FaissStore
from tests.conftest import FAST_MODEL, subset_catalog

LITE = Manifest(name="efficientnet-lite0", dim=1280, image_size=128, weights=None, weights_fingerprint=None)


def test_round_trip_writes_the_current_version() -> None:
    data = LITE.to_dict()
    assert data["manifest_version"] == MANIFEST_VERSION
    assert Manifest.from_dict(json.loads(json.dumps(data))) == LITE
    assert "head" not in data and "text_alignment" not in data  # absent layers leave no key


def test_an_unversioned_description_reads_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    legacy = {"name": "fashion", "image_size": 128, "weights": None, "precision": "fp32",
              "weights_fingerprint": None, "dim": 256, "head": "abc"}
    with caplog.at_level(logging.INFO, logger="fashionrec.manifest"):
        read = Manifest.from_dict(legacy, "old index")
    assert read == Manifest(name="fashion", dim=256, image_size=128, head="abc")
    assert "old index records manifest version 1" in caplog.text
    no_precision = {k: v for k, v in legacy.items() if k != "precision"}  # written before precisions existed
    assert Manifest.from_dict(no_precision).precision == "fp32"


def test_a_newer_or_malformed_description_is_refused() -> None:
    with pytest.raises(IndexFormatError, match="newer fashionrec"):
        Manifest.from_dict({**LITE.to_dict(), "manifest_version": MANIFEST_VERSION + 1})
    with pytest.raises(IndexFormatError, match="malformed"):
        Manifest.from_dict({"name": "fashion"})  # no dim
    with pytest.raises(IndexFormatError, match="malformed"):
        Manifest.from_json("{not json")
    assert Manifest.from_json(None) is None and Manifest.from_json("{}") is None


def test_identity_covers_the_backbone_not_what_is_layered_on_top() -> None:
    projected = LITE.through_head("f00d", 256)
    assert projected.dim == 256 and projected.head == "f00d"
    assert LITE.same_model(projected) and LITE.same_model(LITE.aligned("c0ffee"))
    assert not LITE.same_model(Manifest(name="efficientnet-lite0", dim=1280, image_size=128, precision="int8"))
    assert not LITE.same_model(Manifest(name="efficientnet-lite0", dim=1280, image_size=160))
    assert not LITE.same_model(None)
    assert LITE.through_head(None, 7) is LITE


def test_read_and_write_through_the_index_database(tmp_path: Path) -> None:
    db = CatalogDB(tmp_path, create=True)
    try:
        assert manifests.read_optional(db) is None
        with pytest.raises(IndexFormatError, match="incomplete"):
            manifests.read(db, "index in here")
        manifests.write(db, LITE)
        assert manifests.read(db) == LITE
        assert json.loads(db.get_setting(manifests.SETTING) or "")["manifest_version"] == MANIFEST_VERSION
    finally:
        db.close()


def test_an_index_written_before_manifest_versions_opens_and_is_upgraded_by_the_next_index_run(
    tmp_path: Path,
) -> None:
    catalog = subset_catalog(tmp_path / "catalog", 12)
    index_dir = tmp_path / "index"
    index_catalog(catalog, index_dir, model=FAST_MODEL, progress=False)
    # what fashionrec wrote before the manifest: the same keys, no version, in the database and the FAISS header
    db = CatalogDB(index_dir)
    legacy = {k: v for k, v in manifests.read(db).to_dict().items() if k != "manifest_version"}
    db.set_setting(manifests.SETTING, json.dumps(legacy))
    db.close()
    store = FaissStore.load(index_dir)
    with Recommender.open(index_dir) as rec:
        assert rec.manifest == Manifest.from_dict(legacy) and len(rec) == 12
        first = rec.similar(store.ids[0], k=3)
        assert len(first) == 3
    index_catalog(catalog, index_dir, model=FAST_MODEL, progress=False)  # nothing to embed again
    db = CatalogDB(index_dir)
    try:
        assert json.loads(db.get_setting(manifests.SETTING) or "")["manifest_version"] == MANIFEST_VERSION
        assert db.count(embedded=True) == 12
    finally:
        db.close()
    with Recommender.open(index_dir) as rec:
        assert [r.id for r in rec.similar(store.ids[0], k=3)] == [r.id for r in first]
