"""Reading catalogues: bad rows are reported with their ids, never fatal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.catalog import read_catalog
from fashionrec.errors import FashionrecError
from tests.conftest import DEMO_CATALOG, DEMO_IMAGES, write_catalog

HEADER = "id,gender,articleType,productDisplayName\n"


def _catalog(tmp_path: Path, csv_text: str, image_ids: list[str]) -> Path:
    (tmp_path / "images").mkdir(parents=True)
    for item_id in image_ids:
        Image.new("RGB", (60, 80), "red").save(tmp_path / "images" / f"{item_id}.jpg")
    (tmp_path / "styles.csv").write_text(csv_text, encoding="utf-8")
    return tmp_path


def test_demo_catalog_reads_cleanly() -> None:
    cat = read_catalog(DEMO_CATALOG)
    assert len(cat.items) == 300
    assert cat.report.summary().startswith("300 rows: 0 malformed")
    assert "articleType" in cat.columns and "id" not in cat.columns


def test_bad_rows_are_reported_not_fatal(tmp_path: Path) -> None:
    text = HEADER + "1,Men,Shirts,Plain shirt\n2,Women,Tops,Top, with comma\n1,Men,Shirts,dup\n3,Men,Jeans,No image\n4,Men,Tshirts,Tee\n"
    cat = read_catalog(_catalog(tmp_path, text, ["1", "2", "4"]))
    assert [i.id for i in cat.items] == ["1", "4"]
    assert cat.report.malformed_rows == [{"line": 3, "id": "2", "fields": 5}]
    assert cat.report.duplicate_ids == ["1"]
    assert cat.report.missing_images == ["3"]


def test_symlink_outside_catalog_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8)).save(outside)
    root = _catalog(tmp_path / "cat", HEADER + "1,Men,Shirts,a\n2,Men,Shirts,b\n", ["1"])
    os.symlink(outside, root / "images" / "2.jpg")
    cat = read_catalog(root)
    assert [i.id for i in cat.items] == ["1"] and cat.report.unsafe_paths == ["2"]


def test_configurable_columns_and_pattern(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "pics" / "A-7.png")
    (tmp_path / "products.csv").write_text("sku,colour,name\nA-7,Red,Thing\n", encoding="utf-8")
    cat = read_catalog(tmp_path, tmp_path / "products.csv", id_column="sku", image_pattern="pics/{sku}.png",
                       columns=["colour"])
    assert [(i.id, i.metadata) for i in cat.items] == [("A-7", {"colour": "Red"})]


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [("name\nx\n", "no 'id' column"), ("id,a,a\n1,2,3\n", "duplicate column")],
)
def test_unusable_csv_is_one_clear_error(tmp_path: Path, csv_text: str, message: str) -> None:
    with pytest.raises(FashionrecError, match=message):
        read_catalog(_catalog(tmp_path, csv_text, []))


@pytest.mark.slow
def test_shared_catalog_reports_its_known_defects(shared_data: Path) -> None:
    cat = read_catalog(shared_data / "catalogue")
    assert len(cat.report.malformed_rows) == 22
    assert len(cat.report.missing_images) == 1325
    assert len(cat.items) == 41099


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
def test_unusable_csv_bytes_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
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
        ("images/{id.jpg", "bad image_pattern"),
        ("images/{id:d}.jpg", "bad image_pattern"),
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
