"""Write safety: ``kill -9`` at random points never leaves an index that lies, and damaged files are clear errors.

After every kill the index directory either opens, with every FAISS id backed by a SQLite row and vectors of the
recorded model, or says clearly that it is incomplete; re-running the same command finishes the job with the same
ids (and vectors) as a clean run. Corrupt, truncated or foreign ``vectors.faiss`` / ``catalog.sqlite`` files give
an ``IndexFormatError`` from Python and one error line (exit 2) from the CLI, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from fashionrec.catalog import read_catalog
from fashionrec.catalog_db import DB_NAME, CatalogDB
from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import INDEX_FILE, MAGIC, FaissStore
from tests.conftest import CLI_ENV, DEMO_QUERIES, FAST_MODEL, assert_one_clear_error, run_cli

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

PRODUCTS = 120
BATCH = 8  # many small commits: many places for a kill to land
SEED = 7


def index_cmd(catalog: Path, index_dir: Path, image_size: int = 128) -> list[str]:
    return [sys.executable, "-m", "fashionrec", "index", str(catalog), "--index-dir", str(index_dir), "--model",
            FAST_MODEL.name, "--image-size", str(image_size), "--batch-size", str(BATCH), "--json"]


def db_state(index_dir: Path) -> tuple[int, int | None]:
    """(embedded rows, image size of the recorded model), read without disturbing the writer."""
    try:
        with sqlite3.connect(f"file:{index_dir / DB_NAME}?mode=ro", uri=True, timeout=5) as conn:
            embedded = int(conn.execute("SELECT COUNT(*) FROM items WHERE vector IS NOT NULL").fetchone()[0])
            model = conn.execute("SELECT value FROM settings WHERE key='model'").fetchone()
    except sqlite3.Error:
        return 0, None
    return embedded, json.loads(model[0])["image_size"] if model else None


def kill_at(cmd: list[str], index_dir: Path, point: tuple[str, float]) -> bool:
    """Start ``cmd`` and SIGKILL it at ``point``: ("time", seconds) or ("embedded", rows of the new model).
    True when it was killed, False when it finished first."""
    proc = subprocess.Popen(cmd, env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kind, value = point
    image_size = int(cmd[cmd.index("--image-size") + 1])
    deadline = time.monotonic() + (value if kind == "time" else 180)
    while proc.poll() is None and time.monotonic() < deadline:
        embedded, recorded_size = db_state(index_dir)
        if kind == "embedded" and recorded_size == image_size and embedded >= value:
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    proc.kill()
    proc.wait()
    return killed


def check_state(index_dir: Path, embedder: Embedder) -> None:
    """The index after a kill: intact SQLite; FAISS ids all backed by rows; opens, or says it is incomplete."""
    if (index_dir / DB_NAME).exists():
        with sqlite3.connect(index_dir / DB_NAME) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db = CatalogDB(index_dir)
        try:
            if (index_dir / INDEX_FILE).exists():
                store = FaissStore.load(index_dir)
                assert set(db.get_many(store.ids)) == set(store.ids), "FAISS ids without a SQLite row"
        finally:
            db.close()
    try:
        Recommender.open(index_dir, embedder=embedder).close()
    except FashionrecError as exc:
        assert "fashionrec index" in str(exc), exc  # the message says how to finish
    info = run_cli("info", "--index-dir", str(index_dir))
    assert info.returncode in (0, 2) and "Traceback" not in info.stderr, info.stderr


def vectors_of(index_dir: Path) -> tuple[list[str], np.ndarray]:
    store = FaissStore.load(index_dir)
    return store.ids, store.index.reconstruct_n(0, len(store))


def test_index_killed_at_random_points_resumes_to_the_clean_result(
    catalog_120: Path, tmp_path: Path, fast_embedder: Embedder
) -> None:
    reference = tmp_path / "reference"
    index_catalog(catalog_120, reference, model=FAST_MODEL, embedder=fast_embedder, batch_size=BATCH,
                  progress=False)

    rng = random.Random(SEED)
    embed_points = sorted(rng.sample(range(BATCH, PRODUCTS * 2 // 3), 2))
    # a first kill anywhere from start-up to embedding, then two at random numbers of committed batches
    points = [("time", rng.uniform(0.3, 1.5))] + [("embedded", n) for n in embed_points]
    index_dir = tmp_path / "killed"
    kills = 0
    for point in points:  # each run resumes what the previous killed run left
        kills += kill_at(index_cmd(catalog_120, index_dir), index_dir, point)
        check_state(index_dir, fast_embedder)
    assert kills >= 2, "the runs should have been killed part-way"

    done_before, _ = db_state(index_dir)
    assert 0 < done_before < PRODUCTS, "the last kill should have left the embedding part-way"
    resumed = subprocess.run(index_cmd(catalog_120, index_dir), env=CLI_ENV, check=True, capture_output=True,
                             text=True)
    summary = json.loads(resumed.stdout)
    assert summary["total"] == PRODUCTS and summary["embedded"] == PRODUCTS - done_before  # resumed, not restarted
    (ids_a, va), (ids_b, vb) = vectors_of(reference), vectors_of(index_dir)
    assert ids_a == ids_b
    np.testing.assert_allclose(va, vb, atol=1e-4)


def test_update_with_removals_and_a_new_model_killed_then_resumed(
    catalog_120: Path, tmp_path: Path, fast_embedder: Embedder
) -> None:
    """The worst update: products removed, images changed, new products, and a model change re-embedding all."""
    catalog = tmp_path / "catalog"
    shutil.copytree(catalog_120, catalog)
    index_dir = tmp_path / "index"
    index_catalog(catalog, index_dir, model=FAST_MODEL, embedder=fast_embedder, batch_size=BATCH, progress=False)

    lines = (catalog / "styles.csv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:4]:  # three changed images
        path = catalog / "images" / f"{line.split(',')[0]}.jpg"
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    added = [line.replace(line.split(",")[0], f"9{n}{line.split(',')[0]}", 1) for n, line in enumerate(lines[5:7])]
    for old, new in zip(lines[5:7], added):
        shutil.copy(catalog / "images" / f"{old.split(',')[0]}.jpg", catalog / "images" / f"{new.split(',')[0]}.jpg")
    (catalog / "styles.csv").write_text("\n".join(lines[:-5] + added) + "\n", encoding="utf-8")  # five removed

    rng = random.Random(SEED + 1)
    killed = kill_at(index_cmd(catalog, index_dir, 96), index_dir, ("embedded", rng.randrange(BATCH, 80)))
    assert killed, "the update should have been killed part-way"
    check_state(index_dir, fast_embedder)
    with pytest.raises(FashionrecError, match="fashionrec index"):  # half re-embedded: refuses, says how to finish
        Recommender.open(index_dir, embedder=fast_embedder)

    subprocess.run(index_cmd(catalog, index_dir, 96), env=CLI_ENV, check=True, capture_output=True)
    expected = sorted(item.id for item in read_catalog(catalog).items)
    store = FaissStore.load(index_dir)
    assert sorted(store.ids) == expected and store.model["image_size"] == 96
    with Recommender.open(index_dir) as rec:
        assert rec.embedder.image_size == 96 and len(rec.recommend(min(DEMO_QUERIES.glob("*.jpg")), k=3)) == 3


# damaged and foreign files ------------------------------------------------------------------------------------

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


def _foreign_sqlite(path: Path) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")


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
    "sqlite-foreign": (lambda d: _foreign_sqlite(d / DB_NAME), "not a fashionrec index database"),
    "sqlite-future-schema": (lambda d: _set_schema(d / DB_NAME, "99"), "schema version 99"),
    "sqlite-garbled-schema": (lambda d: _set_schema(d / DB_NAME, "abc"), "schema version abc"),
    "sqlite-damaged-page": (lambda d: _damage_metadata_page(d / DB_NAME), "damaged"),
    "sqlite-missing": (lambda d: (d / DB_NAME).unlink(), "no index"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_index_is_a_clear_error(case: str, good_index: Path, tmp_path: Path, fast_embedder: Embedder) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(good_index, index_dir)
    damage, message = DAMAGE[case]
    damage(index_dir)
    with pytest.raises(FashionrecError, match=message) as caught:
        Recommender.open(index_dir, embedder=fast_embedder)
    assert isinstance(caught.value, IndexFormatError) or message == "disagree"


@pytest.mark.parametrize("case", ["faiss-bit-flip", "faiss-foreign", "sqlite-foreign", "sqlite-damaged-page"])
def test_damaged_index_through_the_cli_is_one_error_line(case: str, good_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(good_index, index_dir)
    damage, message = DAMAGE[case]
    damage(index_dir)
    query = str(min(DEMO_QUERIES.glob("*.jpg")))
    assert_one_clear_error(run_cli("recommend", query, "--index-dir", str(index_dir)), message)


def test_foreign_database_is_never_written_to(tmp_path: Path, catalog_120: Path) -> None:
    """Pointing ``index`` at a folder holding someone else's SQLite file refuses it and leaves it untouched."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    _foreign_sqlite(index_dir / DB_NAME)
    before = (index_dir / DB_NAME).read_bytes()
    assert_one_clear_error(run_cli("index", str(catalog_120), "--index-dir", str(index_dir)), "not a fashionrec")
    assert (index_dir / DB_NAME).read_bytes() == before
