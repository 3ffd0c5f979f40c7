"""The texts a product is described by during alignment training: its display name, and templated captions.

Shoppers type short attribute phrases ("red dress for women", "black sports shoes") far more often than full
catalogue names, and the metadata columns say exactly those attributes. A few fixed templates over them add
that phrasing to training without any external data.
"""

from __future__ import annotations

from collections.abc import Mapping

NAME_COLUMN = "productDisplayName"
TEMPLATES = (
    "{baseColour} {articleType} for {gender}",
    "{gender} {articleType}",
    "{baseColour} {articleType}",
    "{usage} {articleType} for {season}",
    "{subCategory} {articleType}",
)


def product_name(metadata: Mapping[str, str]) -> str:
    """The display name, or the article type when a product has no name (never an empty text)."""
    for column in (NAME_COLUMN, "articleType"):
        value = (metadata.get(column) or "").strip()
        if value:
            return value
    return "product"


def captions(metadata: Mapping[str, str]) -> list[str]:
    """Templated captions whose every field is filled (a template with a missing column is skipped)."""
    out = []
    for template in TEMPLATES:
        try:
            values = {key: metadata[key].strip() for key in _fields(template)}
        except KeyError:
            continue
        if all(values.values()):
            out.append(template.format(**values).lower())
    return out


def _fields(template: str) -> list[str]:
    return [part.split("}")[0] for part in template.split("{")[1:]]
