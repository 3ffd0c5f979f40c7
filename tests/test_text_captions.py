"""Captions for the text alignment, filled from catalogue metadata."""

from __future__ import annotations

from fashionrec.text.captions import captions, product_name


def test_captions_fill_templates_from_metadata() -> None:
    meta = {"gender": "Women", "articleType": "Dresses", "baseColour": "Red", "subCategory": "Dress",
            "usage": "Casual", "season": "Summer", "productDisplayName": "Femella Women Red Dress"}
    assert "red dresses for women" in captions(meta) and "casual dresses for summer" in captions(meta)
    assert captions({"articleType": "Dresses", "baseColour": ""}) == []
    assert product_name({"articleType": "Dresses", "productDisplayName": " "}) == "Dresses"
