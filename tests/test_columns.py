"""fashionrec.columns: what the catalogue's columns mean (label, colour, name, auxiliary labels), defaulted from
the catalogue, validated against it, recorded in the index and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import (
    SETTING,
    ColumnRoles,
    load_mapping,
    read_roles,
    recorded_roles,
    resolve,
    write_roles,
)
from fashionrec.errors import FashionrecError

MYNTRA = ["gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage",
          "productDisplayName"]


def test_myntra_defaults_are_myntra_names() -> None:
    roles = ColumnRoles.defaults(MYNTRA)
    assert roles == ColumnRoles("articleType", "baseColour", "productDisplayName", ("subCategory", "gender"))
    # a Myntra head learns its auxiliary columns in the order it always did (the shipped figures do not move)
    assert roles.learnt_columns == ("subCategory", "baseColour", "gender")
    assert roles.agreement_columns == ("subCategory", "gender", "baseColour")


def test_a_shop_gets_its_own_usual_names_and_none_for_what_it_lacks() -> None:
    assert ColumnRoles.defaults(["category", "title"]) == ColumnRoles("category", None, "title", ())
    assert ColumnRoles.defaults(["sku_notes"]) == ColumnRoles()
    with pytest.raises(FashionrecError, match="has no label column.*--label COLUMN"):
        ColumnRoles().require_label("index in x")


def test_resolve_validates_given_columns_and_keeps_the_rest() -> None:
    columns = ["category", "colour", "size", "title"]
    roles = resolve(columns, label="size", colour="colour", aux="category, size")
    assert roles == ColumnRoles("size", "colour", "title", ("category",))  # the label is never its own auxiliary
    with pytest.raises(FashionrecError, match="label 'type' is not a column of the catalogue; columns: category"):
        resolve(columns, label="type")
    with pytest.raises(FashionrecError, match="auxiliary label 'gender'"):
        resolve(columns, aux="gender")
    assert resolve(columns, roles, colour="").colour is None  # "" clears a role
    assert resolve(["category", "title"], roles) == ColumnRoles(None, None, "title", ("category",))


def test_roles_round_trip_through_the_index_database(tmp_path: Path) -> None:
    db = CatalogDB(tmp_path, create=True)
    try:
        db.sync([], ["category", "colour", "title"])
        assert recorded_roles(db) is None
        assert read_roles(db) == ColumnRoles("category", "colour", "title", ())  # nothing recorded: the defaults
        write_roles(db, ColumnRoles("colour", None, "title", ("category",)))
        assert json.loads(db.get_setting(SETTING) or "") == {"label": "colour", "colour": None, "name": "title",
                                                              "aux": ["category"]}
        assert read_roles(db) == ColumnRoles("colour", None, "title", ("category",))
        db.sync([], ["category", "title"])  # the catalogue dropped the colour column
        assert read_roles(db).label is None
    finally:
        db.close()


def test_load_mapping_reads_a_class_to_label_values_object(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"hat": ["caps", "hats"]}))
    assert load_mapping(path) == {"hat": ["caps", "hats"]}
    path.write_text("[1]")
    with pytest.raises(FashionrecError, match="class -> list of label values"):
        load_mapping(path)
