"""Indexing end to end on the demo catalogue: self-retrieval, filters, incremental updates, kill -9 resume."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec import live
from fashionrec.catalog import read_catalog
from fashionrec.catalog_db import DB_NAME, CatalogDB
from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.imageio import load_image
from fashionrec.indexing import embed_batches, index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import INDEX_FILE, FaissStore
from tests.conftest import (
    CLI_ENV,
    DEMO_CATALOG,
    DEMO_IMAGES,
    DEMO_QUERIES,
    DRESS,
    FAST_MODEL,
    PHOTOS,
    REPO,
    assert_one_clear_error,
    foreign_sqlite,
    kill_index_run,
    run_cli,
    write_catalog,
)


def _ids(catalog: Path) -> list[str]:
    with (catalog / "styles.csv").open(newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


def test_every_item_finds_itself_first(demo_index: Path) -> None:
    with Recommender.open(demo_index) as rec:
        ids = _ids(DEMO_CATALOG)[::15]
        for item_id in ids:
            results = rec.recommend(DEMO_CATALOG / "images" / f"{item_id}.jpg", k=5)
            assert results[0].id == item_id and results[0].score > 0.99
            assert len(results) == 5 and results[0].metadata["articleType"]


def test_filters_apply_inside_the_search(demo_index: Path) -> None:
    query = DEMO_CATALOG / "images" / f"{_ids(DEMO_CATALOG)[0]}.jpg"
    with Recommender.open(demo_index) as rec:
        # 10 Watches exist in the demo catalogue: a filtered query must return all 10 even if none is near the query.
        watches = rec.recommend(query, k=10, filters={"articleType": ["Watches"]})
        assert len(watches) == 10 and {r.metadata["articleType"] for r in watches} == {"Watches"}
        both = rec.recommend(query, k=50, filters={"gender": ["Women"], "articleType": ["Heels", "Flats"]})
        assert both and all(r.metadata["gender"] == "Women" and r.metadata["articleType"] in {"Heels", "Flats"} for r in both)
        assert rec.recommend(query, k=5, filters={"baseColour": ["No Such Colour"]}) == []


def test_similar_excludes_the_item_itself(demo_index: Path) -> None:
    item_id = _ids(DEMO_CATALOG)[3]
    with Recommender.open(demo_index) as rec:
        results = rec.similar(item_id, k=5)
        assert len(results) == 5 and item_id not in {r.id for r in results}
        assert results == sorted(results, key=lambda r: -r.score)


@pytest.mark.slow
def test_incremental_reindex_embeds_only_changes(demo_catalog_copy: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    first = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert first.embedded == 300
    again = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert again.embedded == 0 and again.sync.unchanged == 300

    ids = _ids(demo_catalog_copy)
    for item_id in ids[:3]:  # change 3 images
        Image.open(demo_catalog_copy / "images" / f"{item_id}.jpg").rotate(90).save(
            demo_catalog_copy / "images" / f"{item_id}.jpg")
    lines = (demo_catalog_copy / "styles.csv").read_text().splitlines()
    removed = {lines[-1].split(",")[0], lines[-2].split(",")[0]}
    new_line = lines[1].replace(ids[0], "999999", 1)
    (demo_catalog_copy / "styles.csv").write_text("\n".join(lines[:-2] + [new_line]) + "\n")
    Image.open(DEMO_CATALOG / "images" / f"{ids[5]}.jpg").save(demo_catalog_copy / "images" / "999999.jpg")

    update = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert (update.sync.added, update.sync.changed, update.sync.removed) == (1, 3, 2)
    assert update.embedded == 4 and update.total == 299
    store = FaissStore.load(index_dir)
    assert "999999" in store.ids and not removed & set(store.ids)


@pytest.mark.slow
def test_model_change_reembeds_everything(demo_catalog_copy: Path, tmp_path: Path) -> None:
    from fashionrec.modelspec import ModelSpec

    index_dir = tmp_path / "index"
    index_catalog(demo_catalog_copy, index_dir, model=ModelSpec("efficientnet-lite0", 128), progress=False)
    changed = index_catalog(demo_catalog_copy, index_dir, model=ModelSpec("efficientnet-lite0", 160), progress=False)
    assert changed.embedded == 300


@pytest.mark.slow
def test_int8_index_serves_itself_and_a_precision_change_reembeds(demo_catalog_copy: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    command = [*_index_cmd(demo_catalog_copy, index_dir), "--precision", "int8", "--json"]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert '"embedded": 300' in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert '"embedded": 0' in again.stdout  # the recorded precision is the one asked for: nothing to redo
    with Recommender.open(index_dir) as rec:
        assert rec.embedder.precision == "int8"
        for item_id in _ids(demo_catalog_copy)[::30]:
            assert rec.recommend(demo_catalog_copy / "images" / f"{item_id}.jpg", k=3)[0].id == item_id
    back = subprocess.run(command[:-3] + ["--json"], capture_output=True, text=True, check=True)
    assert '"embedded": 300' in back.stdout


def _index_cmd(catalog: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "fashionrec", "index", str(catalog), "--index-dir", str(index_dir),
            "--model", "efficientnet-lite0", "--image-size", "128", "--batch-size", "16"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_index(demo_catalog_copy: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    reference = tmp_path / "reference"
    subprocess.run(_index_cmd(demo_catalog_copy, reference), check=True, env=env, capture_output=True)

    index_dir = tmp_path / "killed"
    done_before = kill_index_run(_index_cmd(demo_catalog_copy, index_dir), index_dir, env, after=48)
    assert 0 < done_before < 300, "the run should have been killed part-way"
    assert not (index_dir / INDEX_FILE).exists()

    resumed = subprocess.run(_index_cmd(demo_catalog_copy, index_dir) + ["--json"], check=True, env=env,
                             capture_output=True, text=True)
    assert f'"embedded": {300 - done_before}' in resumed.stdout

    a, b = FaissStore.load(reference), FaissStore.load(index_dir)
    assert a.ids == b.ids
    va, vb = a.index.reconstruct_n(0, len(a)), b.index.reconstruct_n(0, len(b))
    np.testing.assert_allclose(va, vb, atol=1e-4)


def test_corrupt_index_file_is_a_clear_error(demo_index: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_index, copy)
    data = bytearray((copy / INDEX_FILE).read_bytes())
    data[-100] ^= 0xFF
    (copy / INDEX_FILE).write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        FaissStore.load(copy)
    (copy / INDEX_FILE).write_bytes(b"<html>not an index</html>")
    with pytest.raises(IndexFormatError, match="not a fashionrec"):
        FaissStore.load(copy)
    with pytest.raises(IndexFormatError, match="no index"):
        CatalogDB(tmp_path / "nothing-here")


def big_png(path: Path, width: int, height: int) -> None:
    """A real, valid greyscale PNG of ``width`` x ``height`` pixels, written without ever holding it decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer = zlib.compressobj(1)
    row = b"\x00" + bytes(width)
    body = b"".join(packer.compress(row * 100) for _ in range(height // 100)) + packer.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_header_only_catalogue_gives_an_empty_index_that_answers(
    tmp_path: Path, fast_embedder: Embedder
) -> None:
    catalog = write_catalog(tmp_path / "cat", [["id", "name"]])
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    assert result.total == 0
    with Recommender.open(tmp_path / "index", embedder=fast_embedder) as rec:
        assert len(rec) == 0 and rec.recommend(DEMO_IMAGES[0], k=5) == []


def test_unicode_ids_and_metadata_round_trip(tmp_path: Path, fast_embedder: Embedder) -> None:
    ids = ["çà-42", "商品-1", "👗", "Ω\u0301"]
    rows = [["id", "name", "colour"]] + [[i, f"«{i}» ドレス", "Bleu nuit"] for i in ids]
    catalog = write_catalog(tmp_path / "cat", rows, {f"{i}.jpg": None for i in ids})
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    assert result.total == len(ids) and result.unreadable == 0
    with Recommender.open(tmp_path / "index", embedder=fast_embedder) as rec:
        for item_id in ids:
            item = rec.item(item_id)
            assert item is not None and item.metadata["name"] == f"«{item_id}» ドレス"
            assert rec.similar(item_id, k=10, filters={"colour": ["Bleu nuit"]})


def test_bad_image_files_are_reported_and_the_rest_indexed(tmp_path: Path, fast_embedder: Embedder) -> None:
    good = DEMO_IMAGES[0].read_bytes()
    files: dict[str, bytes | None] = {
        "good.jpg": None,
        "html.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "empty.jpg": b"",
        "truncated.jpg": good[: len(good) // 3],
        "text.jpg": b"just some text",
        "tiff.jpg": b"II*\x00" + bytes(100),  # a format we refuse before its decoder runs
    }
    rows = [["id", "name"]] + [[name.split(".")[0], name] for name in files]
    catalog = write_catalog(tmp_path / "cat", rows, files)
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    unreadable = {u["id"]: u["error"] for u in result.report.unreadable_images}
    assert set(unreadable) == {"html", "empty", "truncated", "text", "tiff"}
    assert "empty" in unreadable["empty"] and "not an image" in unreadable["html"]
    assert result.total == 1
    report = json.loads((tmp_path / "index" / "catalog_report.json").read_text())
    assert {u["id"] for u in report["unreadable_images"]} == set(unreadable)


def test_unreadable_file_during_scan_is_reported(
    tmp_path: Path, fast_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that disappears or cannot be read between listing and hashing skips alone (root ignores chmod)."""
    from fashionrec import indexing

    catalog = write_catalog(tmp_path / "cat", [["id", "name"], ["1", "a"], ["2", "b"]], {"1.jpg": None, "2.jpg": None})
    real_digest = indexing.file_digest

    def flaky_digest(path: Path) -> str:
        if path.name == "2.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return real_digest(path)

    monkeypatch.setattr(indexing, "file_digest", flaky_digest)
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    assert result.total == 1 and [u["id"] for u in result.report.unreadable_images] == ["2"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_100_megapixel_image_is_skipped_without_decoding(tmp_path: Path, fast_embedder: Embedder) -> None:
    """Decision: catalogue images over the 40-megapixel limit are reported as unreadable, never decoded (a
    decoded 100 MP image is 300 MB of RGB); downscale such files before indexing."""
    catalog = write_catalog(tmp_path / "cat", [["id", "name"], ["huge", "x"], ["ok", "y"]], {"ok.jpg": None})
    big_png(catalog / "images" / "huge.jpg", 10_000, 10_000)
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    assert result.total == 1
    [skip] = result.report.unreadable_images
    assert skip["id"] == "huge" and "too many pixels" in skip["error"]

    probe = (
        "import resource, sys\nfrom fashionrec.errors import ImageError\nfrom fashionrec.imageio import load_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_image(sys.argv[1])\nexcept ImageError:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    grown_kib = int(subprocess.run([sys.executable, "-W", "ignore", "-c", probe, str(catalog / "images" / "huge.jpg")],
                                   capture_output=True, text=True, check=True).stdout)
    assert grown_kib < 30 * 1024, f"refusing a 100 MP image grew memory by {grown_kib} KiB"


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


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert sorted(store.ids) == expected and store.model is not None and store.model.image_size == 96
    with Recommender.open(index_dir) as rec:
        assert rec.embedder.image_size == 96 and len(rec.recommend(min(DEMO_QUERIES.glob("*.jpg")), k=3)) == 3


@pytest.mark.slow
def test_foreign_database_is_never_written_to(tmp_path: Path, catalog_120: Path) -> None:
    """Pointing ``index`` at a folder holding someone else's SQLite file refuses it and leaves it untouched."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    foreign_sqlite(index_dir / DB_NAME)
    before = (index_dir / DB_NAME).read_bytes()
    assert_one_clear_error(run_cli("index", str(catalog_120), "--index-dir", str(index_dir)), "not a fashionrec")
    assert (index_dir / DB_NAME).read_bytes() == before


def test_a_later_index_of_the_folder_drops_extra_photos(live_rec: Recommender, live_index: Path) -> None:
    photos = [live.embed_photo(live_rec, p) for p in PHOTOS]
    live.put_item(live_rec, "1548", photos, {"articleType": "Mixed"})  # a catalogue product given three photos
    index_catalog(live_index.parent / "catalog", live_index, model=ModelSpec("efficientnet-lite0", 64), progress=False)
    with Recommender.open(live_index) as reopened:
        assert reopened.db.photo_path("1548", 1) is None and len(reopened) == 20
        assert isinstance(reopened.store, FaissStore) and reopened.store.photos is None


def test_a_catalogue_row_can_name_several_photos(tmp_path: Path) -> None:
    import csv
    import shutil

    from tests.conftest import subset_catalog

    catalog = subset_catalog(tmp_path / "catalog", 10)
    (catalog / "extra").mkdir()
    shutil.copy(DEMO_QUERIES / "shoes.jpg", catalog / "extra" / "shoes.jpg")
    shutil.copy(DEMO_QUERIES / "pants.jpg", catalog / "extra" / "pants.jpg")
    with (catalog / "styles.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    first, second, third = rows[1][0], rows[2][0], rows[3][0]
    listed = {first: f"images/{first}.jpg; extra/shoes.jpg ;extra/pants.jpg", second: f"images/{second}.jpg;extra/gone.jpg",
              third: "../outside.jpg"}
    rows = [rows[0] + ["images"]] + [row + [listed.get(row[0], "")] for row in rows[1:]]
    with (catalog / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    model = ModelSpec("efficientnet-lite0", 64)
    result = index_catalog(catalog, tmp_path / "index", model=model, progress=False)
    assert result.total == 9 and result.embedded == 11  # 9 products, 2 further photos
    assert result.report.unsafe_paths == [third]
    assert result.report.missing_images == [f"{second} (photo 1: extra/gone.jpg)"]
    with Recommender.open(tmp_path / "index") as rec:
        assert "images" not in rec.columns and len(rec) == 9
        assert [(rec.recommend(p, k=1)[0].id, rec.recommend(p, k=1)[0].photo) for p in PHOTOS[1:]] == [
            (first, 1), (first, 2)]
    assert index_catalog(catalog, tmp_path / "index", model=model, progress=False).embedded == 0  # incremental
    rows[1][-1] = f"images/{first}.jpg;extra/pants.jpg"  # one photo fewer: pants is photo 1 now
    with (catalog / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    assert index_catalog(catalog, tmp_path / "index", model=model, progress=False).embedded == 1
    with Recommender.open(tmp_path / "index") as rec:
        assert (rec.recommend(PHOTOS[2], k=1)[0].id, rec.recommend(PHOTOS[2], k=1)[0].photo) == (first, 1)
        assert rec.db.photo_path(first, 2) is None


def test_batched_decoding_gives_the_same_vectors_as_one_image_at_a_time(tmp_path: Path) -> None:
    embedder = ModelSpec().build()
    paths = sorted((DEMO_CATALOG / "images").glob("*.jpg"))[:9] + sorted(DEMO_QUERIES.glob("*.jpg"))
    items = [(p.stem, str(p)) for p in paths]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items.insert(3, ("broken", str(broken)))
    batches = list(embed_batches(embedder, items, batch_size=len(items)))
    assert len(batches) == 1
    ids, vectors, failures = batches[0]
    assert ids == [p.stem for p in paths] and [f[0] for f in failures] == ["broken"]
    one_by_one = np.vstack([embedder.embed_arrays(embedder.preprocess(load_image(p))[None]) for p in paths])
    assert np.allclose(vectors, one_by_one, atol=1e-6)
    whole = embedder.embed([load_image(p) for p in paths])  # the same batch through the per-image preprocessing
    assert np.array_equal(vectors, whole)


@pytest.mark.parametrize("precision", ["fp32"])
def test_index_with_the_default_model_never_imports_pytorch(tmp_path: Path, precision: str) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(DEMO_CATALOG, catalog)
    rows = (catalog / "styles.csv").read_text().splitlines()[:21]
    (catalog / "styles.csv").write_text("\n".join(rows) + "\n")
    code = ("import sys; from fashionrec.cli import main; "
            f"rc = main(['index', {str(catalog)!r}, '--index-dir', {str(tmp_path / 'index')!r}, '--json', "
            f"'--precision', {precision!r}]); print('torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["False", "0"]


def test_a_later_index_of_the_catalogue_folder_wins(live_index: Path) -> None:
    catalog = live_index.parent / "catalog"
    with Recommender.open(live_index) as rec:
        live.put_item(rec, "api-only", live.embed_photo(rec, DRESS), {"articleType": "Dresses"})
        live.patch_item(rec, "1548", {"baseColour": "Gold"})
        gone = next(i.id for i in rec.db.iter_items() if i.id != "1548")
        live.delete_item(rec, gone)
    index_catalog(catalog, live_index, model=ModelSpec("efficientnet-lite0", 64), progress=False)
    assert not (live_index / "uploads" / "api-only").exists()
    with Recommender.open(live_index) as rec:
        assert rec.item("api-only") is None
        assert rec.item("1548").metadata["baseColour"] == "White"  # type: ignore[union-attr]
        assert rec.item(gone) is not None and len(rec) == 20
    db = CatalogDB(live_index)
    try:
        assert db.count(embedded=True) == 20
    finally:
        db.close()
