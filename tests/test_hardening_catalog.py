"""Adversarial catalogues: every broken CSV, hostile id or bad image file is a reported skip or one clear error.

Nothing here may crash, hang or read outside the catalogue folder, whether driven through ``read_catalog`` /
``index_catalog`` or the ``fashionrec index`` command (where "one clear error" means exit 2 and one stderr line).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from fashionrec.catalog import read_catalog
from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_IMAGES, FAST_MODEL, assert_one_clear_error, run_cli, write_catalog


def big_png(path: Path, width: int, height: int) -> None:
    """A real, valid greyscale PNG of ``width`` x ``height`` pixels, written without ever holding it decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer = zlib.compressobj(1)
    row = b"\x00" + bytes(width)
    body = b"".join(packer.compress(row * 100) for _ in range(height // 100)) + packer.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# CSV structure ----------------------------------------------------------------------------------------------

def test_unclosed_quote_reports_the_rows_it_swallowed(tmp_path: Path) -> None:
    text = 'id,name\n1,fine\n2,"never closed\n3,swallowed\n4,swallowed too\n'
    write_catalog(tmp_path, [], {"1.jpg": None, "2.jpg": None, "3.jpg": None})
    (tmp_path / "styles.csv").write_text(text, encoding="utf-8")
    cat = read_catalog(tmp_path)
    assert [i.id for i in cat.items] == ["1"]
    assert cat.report.malformed_rows == [{"line": 3, "id": "2", "fields": 2, "to_line": 5}]


def test_unclosed_quote_in_a_huge_csv_is_one_clear_error(tmp_path: Path) -> None:
    write_catalog(tmp_path, [], {"1.jpg": None})
    body = "".join(f"{n},product {n}\n" for n in range(2, 20_000))
    (tmp_path / "styles.csv").write_text(f'id,name\n1,"unclosed\n{body}', encoding="utf-8")
    with pytest.raises(FashionrecError, match="unreadable CSV near line"):
        read_catalog(tmp_path)


def test_stray_quotes_and_ragged_rows_are_reported(tmp_path: Path) -> None:
    write_catalog(tmp_path, [], {"1.jpg": None, "2.jpg": None, "3.jpg": None})
    text = 'id,colour,name\n1,Red,say "hi"\n2,Blue\n3,Green,x,extra\n,Black,no id\n   ,White,blank id\n'
    (tmp_path / "styles.csv").write_text(text, encoding="utf-8")
    cat = read_catalog(tmp_path)
    assert [(i.id, i.metadata["name"]) for i in cat.items] == [("1", 'say "hi"')]
    assert [r["id"] for r in cat.report.malformed_rows] == ["2", "3", "", ""]


def test_duplicated_ids_keep_the_first_and_are_reported(tmp_path: Path) -> None:
    rows = [["id", "name"], ["7", "first"], [" 7 ", "padded duplicate"], ["7", "exact duplicate"], ["8", "other"]]
    cat = read_catalog(write_catalog(tmp_path, rows, {"7.jpg": None, "8.jpg": None}))
    assert [(i.id, i.metadata["name"]) for i in cat.items] == [("7", "first"), ("8", "other")]
    assert cat.report.duplicate_ids == ["7", "7"]


def test_byte_order_mark_and_crlf_are_read(tmp_path: Path) -> None:
    write_catalog(tmp_path, [], {"1.jpg": None, "2.jpg": None})
    (tmp_path / "styles.csv").write_bytes("\ufeffid,name\r\n1,a\r\n2,b\r\n".encode())
    cat = read_catalog(tmp_path)
    assert [i.id for i in cat.items] == ["1", "2"] and cat.columns == ["name"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no 'id' column"),
        (b"name,colour\nx,Red\n", "no 'id' column"),
        ("id,name\n1,x\n".encode("utf-16"), "no 'id' column"),  # UTF-16: the header is unreadable, said once
        (b"id,name,name\n1,a,b\n", "duplicate column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "no 'id' column"),  # an image given as the CSV
    ],
)
def test_unusable_csv_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    write_catalog(tmp_path, [])
    (tmp_path / "styles.csv").write_bytes(content)
    with pytest.raises(FashionrecError, match=message):
        read_catalog(tmp_path)


def test_unknown_columns_and_missing_csv_are_clear_errors(tmp_path: Path) -> None:
    write_catalog(tmp_path, [["id", "name"], ["1", "a"]], {"1.jpg": None})
    with pytest.raises(FashionrecError, match="unknown columns"):
        read_catalog(tmp_path, columns=["name", "price"])
    with pytest.raises(FashionrecError, match="metadata CSV not found"):
        read_catalog(tmp_path, tmp_path / "nope.csv")
    with pytest.raises(FashionrecError, match="catalogue folder not found"):
        read_catalog(tmp_path / "missing")


def test_latin1_metadata_is_decoded_not_fatal(tmp_path: Path) -> None:
    write_catalog(tmp_path, [], {"1.jpg": None})
    (tmp_path / "styles.csv").write_bytes("id,name\n1,Chemise \xe0 fleurs\n".encode("latin-1"))
    cat = read_catalog(tmp_path)
    assert [i.id for i in cat.items] == ["1"] and cat.items[0].metadata["name"].startswith("Chemise ")


@pytest.mark.slow
def test_header_only_catalogue_gives_an_empty_index_that_answers(
    tmp_path: Path, fast_embedder: Embedder
) -> None:
    catalog = write_catalog(tmp_path / "cat", [["id", "name"]])
    result = index_catalog(catalog, tmp_path / "index", model=FAST_MODEL, embedder=fast_embedder, progress=False)
    assert result.total == 0
    with Recommender.open(tmp_path / "index", embedder=fast_embedder) as rec:
        assert len(rec) == 0 and rec.recommend(DEMO_IMAGES[0], k=5) == []


# ids and paths ----------------------------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    ("hostile_id", "outcome"),
    [
        ("../../etc/passwd", "unsafe"),
        ("../../../../../../../../etc/hostname", "unsafe"),
        ("/etc/passwd", "missing"),  # "images//etc/passwd" stays inside the catalogue
        ("a\x00b", "unsafe"),  # NUL in a path: refused, not a crash
        ("..", "missing"),  # the catalogue folder itself: inside, but not a file
        ("../styles.csv", "item"),  # a file inside the catalogue: allowed (and later unreadable as an image)
    ],
)
def test_hostile_ids_never_reach_outside_the_catalogue(tmp_path: Path, hostile_id: str, outcome: str) -> None:
    catalog = write_catalog(tmp_path / "cat", [["id", "name"], [hostile_id, "evil"]])
    cat = read_catalog(catalog, image_pattern="images/{id}")  # no suffix: the id alone names the file
    found = {
        "unsafe": cat.report.unsafe_paths,
        "missing": cat.report.missing_images,
        "item": [i.id for i in cat.items],
    }
    assert found == {key: [hostile_id] if key == outcome else [] for key in found}
    for item in cat.items:
        assert item.image_path.resolve().is_relative_to(catalog.resolve())


def test_ids_with_line_breaks_are_malformed_rows(tmp_path: Path) -> None:
    rows = [["id", "name"], ["1\n2", "newline in id"], ["3\r", "carriage return"], ["4", "ok"]]
    cat = read_catalog(write_catalog(tmp_path, rows, {"4.jpg": None}))
    assert [i.id for i in cat.items] == ["4"]
    assert len(cat.report.malformed_rows) == 2


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("images/{id.__class__}.jpg", "not a column"),
        ("images/{id[x]}.jpg", "not a column"),
        ("images/{0}.jpg", "not a column"),
        ("images/{}.jpg", "not a column"),
        ("images/{price}.jpg", "not a column"),
        ("images/{id!r}.jpg", "not a column"),
        ("images/{id.jpg", "bad --image-pattern"),
        ("images/{id:d}.jpg", "bad --image-pattern"),
    ],
)
def test_bad_image_patterns_are_one_clear_error(tmp_path: Path, pattern: str, message: str) -> None:
    catalog = write_catalog(tmp_path, [["id", "name"], ["1", "a"]], {"1.jpg": None})
    with pytest.raises(FashionrecError, match=message):
        read_catalog(catalog, image_pattern=pattern)


def test_patterns_pointing_outside_are_unsafe(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "cat", [["id", "name"], ["1", "a"]], {"1.jpg": None})
    shutil.copy(DEMO_IMAGES[0], tmp_path / "1.jpg")
    for pattern in ("../{id}.jpg", str(tmp_path / "{id}.jpg"), "images/../../{id}.jpg"):
        cat = read_catalog(catalog, image_pattern=pattern)
        assert cat.items == [] and cat.report.unsafe_paths == ["1"], pattern
    assert [i.id for i in read_catalog(catalog, image_pattern="images/../images/{id:0>1}.jpg").items] == ["1"]


def test_symlinks_outside_loops_fifos_and_linked_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(DEMO_IMAGES[0], outside / "secret.jpg")
    rows = [["id", "name"]] + [[str(n), "x"] for n in range(1, 7)]
    catalog = write_catalog(tmp_path / "cat", rows, {"1.jpg": None})
    images = catalog / "images"
    os.symlink(outside / "secret.jpg", images / "2.jpg")  # file link out: refused
    os.symlink("3.jpg", images / "3.jpg")  # link to itself: a loop, refused without crashing
    os.mkfifo(images / "4.jpg")  # a FIFO would block a reader forever: not a regular file, so missing
    os.symlink("1.jpg", images / "5.jpg")  # a link inside the catalogue is fine
    os.symlink(images / "4.jpg", images / "6.jpg")  # a link to the FIFO is missing too
    cat = read_catalog(catalog)
    assert sorted(i.id for i in cat.items) == ["1", "5"]
    assert sorted(cat.report.unsafe_paths) == ["2", "3"]
    assert sorted(cat.report.missing_images) == ["4", "6"]

    linked = write_catalog(tmp_path / "cat2", rows)
    shutil.rmtree(linked / "images")
    os.symlink(outside, linked / "images")  # the whole images folder links out
    shutil.copy(DEMO_IMAGES[0], outside / "1.jpg")
    cat = read_catalog(linked)
    assert cat.items == [] and cat.report.unsafe_paths == [str(n) for n in range(1, 7)]


# image files ------------------------------------------------------------------------------------------------

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


# the command line -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_index_of_a_hostile_catalogue_reports_without_traceback(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    shutil.copy(DEMO_IMAGES[0], outside)
    files: dict[str, bytes | None] = {"1.jpg": None, "2.jpg": None, "3.jpg": None, "4.jpg": b"<html></html>",
                                      "5.jpg": b"", "商品.jpg": None}
    catalog = write_catalog(tmp_path / "cat", [], files)
    csv_text = ('id,name\n1,ok\n../../etc/passwd,evil\n2,dup1\n2,dup2\n3,stray "quote\n4,html\n5,empty\n'
                '6,linked out\n商品,unicode\n7\n')
    (catalog / "styles.csv").write_text(csv_text, encoding="utf-8")
    os.symlink(outside, catalog / "images" / "6.jpg")
    proc = run_cli("index", str(catalog), "--index-dir", str(tmp_path / "index"), "--model", FAST_MODEL.name,
                   "--image-size", str(FAST_MODEL.image_size), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    report = out["report"]
    assert report["unsafe_paths"] == ["../../etc/passwd", "6"]
    assert report["duplicate_ids"] == ["2"]
    assert [r["id"] for r in report["malformed_rows"]] == ["7"]
    assert sorted(u["id"] for u in report["unreadable_images"]) == ["4", "5"]
    assert out["total"] == 4  # 1, 2, 3 (a stray quote mid-field is kept as text) and 商品


@pytest.mark.parametrize(
    ("csv_text", "extra", "message"),
    [
        ("name\nx\n", [], "no 'id' column"),
        ("id,name\n1,a\n", ["--image-pattern", "images/{id.__init__}.jpg"], "bad --image-pattern"),
        ("id,name\n1,a\n", ["--columns", "name,price"], "unknown columns"),
        ('id,name\n1,"' + "x" * 200_000 + "\n", [], "unreadable CSV"),
    ],
)
def test_cli_index_bad_catalogue_is_one_error_line(tmp_path: Path, csv_text: str, extra: list[str], message: str) -> None:
    catalog = write_catalog(tmp_path / "cat", [], {"1.jpg": None})
    (catalog / "styles.csv").write_text(csv_text, encoding="utf-8")
    assert_one_clear_error(run_cli("index", str(catalog), "--index-dir", str(tmp_path / "index"), *extra), message)
