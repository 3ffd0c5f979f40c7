"""Reading catalogues: bad rows are reported with their ids, never fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.catalog import read_catalog
from fashionrec.errors import FashionrecError
from tests.conftest import DEMO_CATALOG

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
