"""Read a retailer's catalogue: a folder of product images plus a metadata CSV.

The defaults fit the Kaggle "Fashion Product Images" layout (``styles.csv`` with an ``id`` column, images at
``images/<id>.jpg``), but the id column, image path pattern and metadata columns are configurable.
Bad rows are *reported*, never fatal: a real catalogue always has some, and one bad row must not stop the
other forty thousand from being indexed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fashionrec.atomic import write_atomically
from fashionrec.errors import FashionrecError

DEFAULT_IMAGE_PATTERN = "images/{id}.jpg"
DEFAULT_ID_COLUMN = "id"
METADATA_CANDIDATES = ("styles.csv", "metadata.csv", "catalog.csv", "catalogue.csv")
# Fields longer than this are almost certainly a broken CSV (an unclosed quote swallowing the file).
MAX_FIELD_CHARS = 10_000


@dataclass(frozen=True)
class CatalogItem:
    """One product: its id, where its image is, and its metadata (all CSV columns but the id, as text)."""

    id: str
    image_path: Path
    metadata: dict[str, str]
    more_images: tuple[Path, ...] = ()
    """Its further photos (an ``images`` column listing several), each embedded; the product is found by its best."""


@dataclass
class CatalogReport:
    """Everything that was skipped while reading a catalogue, with the ids or line numbers concerned."""

    rows: int = 0
    malformed_rows: list[dict[str, object]] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    unsafe_paths: list[str] = field(default_factory=list)
    unreadable_images: list[dict[str, str]] = field(default_factory=list)
    near_duplicates: dict[str, object] | None = None
    """Groups of products whose photos are the same or nearly (fashionrec.duplicates), once they are embedded."""

    def summary(self) -> str:
        """One line a person can read at a glance."""
        return (
            f"{self.rows} rows: {len(self.malformed_rows)} malformed, {len(self.duplicate_ids)} duplicate ids, "
            f"{len(self.missing_images)} missing images, {len(self.unsafe_paths)} unsafe paths, "
            f"{len(self.unreadable_images)} unreadable images"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "summary": self.summary(),
            "rows": self.rows,
            "malformed_rows": self.malformed_rows,
            "duplicate_ids": self.duplicate_ids,
            "missing_images": self.missing_images,
            "unsafe_paths": self.unsafe_paths,
            "unreadable_images": self.unreadable_images,
            **({} if self.near_duplicates is None else {"near_duplicates": self.near_duplicates}),
        }

    def write(self, path: Path) -> None:
        """Write the report as JSON, atomically (a reader never sees half a report)."""
        write_atomically(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False).encode("utf-8"))


@dataclass
class Catalog:
    """The readable items of a catalogue and the report of what was skipped."""

    items: list[CatalogItem]
    report: CatalogReport
    columns: list[str]


def find_metadata(catalog_dir: Path) -> Path:
    """Locate the metadata CSV in a catalogue folder when the user did not name one."""
    for name in METADATA_CANDIDATES:
        if (catalog_dir / name).is_file():
            return catalog_dir / name
    raise FashionrecError(
        f"no metadata CSV in {catalog_dir} (looked for {', '.join(METADATA_CANDIDATES)}); pass --metadata FILE"
    )


def _inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (following symlinks) to a place under ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):  # outside, NUL in the name, or a symlink loop (RuntimeError in 3.11)
        return False
    return True


def _check_pattern(image_pattern: str, header: Sequence[str]) -> None:
    """Allow only plain ``{column}`` fields (with an optional format spec such as ``{id:0>6}``) in the pattern.

    ``str.format`` would otherwise evaluate attribute and index lookups (``{id.__class__}``, ``{id[x]}``), which
    fail per row with arbitrary exceptions; a bad pattern is one clear error before any row is read.
    """
    try:
        fields = [(name, conversion) for _, name, _, conversion in string.Formatter().parse(image_pattern)]
    except ValueError as exc:
        raise FashionrecError(f"bad image_pattern {image_pattern!r}: {exc}") from None
    for name, conversion in fields:
        if name is not None and (name not in header or conversion is not None):
            raise FashionrecError(
                f"bad image_pattern {image_pattern!r}: {{{name}}} is not a column of the CSV (columns: {list(header)})"
            )


IMAGES_COLUMN = "images"
"""A CSV column listing a product's photos, ``;``-separated paths relative to the catalogue folder (the first is
its main photo); where it is empty, or absent, ``--image-pattern`` names the one photo. Not kept as metadata."""


def read_catalog(
    catalog_dir: str | os.PathLike[str],
    metadata: str | os.PathLike[str] | None = None,
    *,
    id_column: str = DEFAULT_ID_COLUMN,
    image_pattern: str = DEFAULT_IMAGE_PATTERN,
    columns: Sequence[str] | None = None,
) -> Catalog:
    """Read the CSV and pair each row with its image.

    ``image_pattern`` is formatted with the row's fields (``{id}`` and any column) and resolved against
    ``catalog_dir`` (an ``images`` column, when a row fills it, lists several photos instead: IMAGES_COLUMN); a path that escapes the catalogue (``..`` or a symlink pointing outside) is refused, so a
    CSV can never make us read arbitrary files. ``columns`` limits the metadata kept (default: all).
    """
    root = Path(catalog_dir)
    if not root.is_dir():
        raise FashionrecError(f"catalogue folder not found: {root}")
    csv_path = Path(metadata) if metadata else find_metadata(root)
    if not csv_path.is_file():
        raise FashionrecError(f"metadata CSV not found: {csv_path}")
    report = CatalogReport()
    items: list[CatalogItem] = []
    seen: set[str] = set()
    try:
        handle = csv_path.open(newline="", encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise FashionrecError(f"cannot read {csv_path}: {exc.strerror}") from None
    with handle:
        csv.field_size_limit(MAX_FIELD_CHARS * 10)
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if not header or id_column not in header:
            raise FashionrecError(f"{csv_path}: no '{id_column}' column in header {header[:12]}")
        if len(set(header)) != len(header):
            raise FashionrecError(f"{csv_path}: duplicate column names in header")
        keep = [c for c in header if c not in (id_column, IMAGES_COLUMN)] if columns is None else list(columns)
        unknown = [c for c in keep if c not in header]
        if unknown:
            raise FashionrecError(f"{csv_path}: unknown columns {unknown}; the header has {header}")
        _check_pattern(image_pattern, header)
        id_pos = header.index(id_column)
        try:
            last_line = reader.line_num
            for row in reader:
                line, spanned = last_line + 1, reader.line_num
                last_line = spanned
                if not row or all(not cell.strip() for cell in row):
                    continue
                report.rows += 1
                # A value spanning lines is almost always an unclosed quote that swallowed the rows after it:
                # report the row with the lines it took instead of indexing garbage metadata silently.
                if len(row) != len(header) or spanned > line or any(len(cell) > MAX_FIELD_CHARS for cell in row):
                    report.malformed_rows.append(
                        {"line": line, "id": row[id_pos].strip() if len(row) > id_pos else "", "fields": len(row),
                         **({"to_line": spanned} if spanned > line else {})}
                    )
                    continue
                record = {h: cell.strip() for h, cell in zip(header, row)}
                item_id = record[id_column]
                if not item_id:
                    report.malformed_rows.append({"line": line, "id": "", "fields": len(row)})
                    continue
                if item_id in seen:
                    report.duplicate_ids.append(item_id)
                    continue
                seen.add(item_id)
                try:
                    relative = image_pattern.format(**record)
                except (KeyError, IndexError, ValueError) as exc:
                    raise FashionrecError(f"bad image_pattern {image_pattern!r}: {exc}") from None
                listed = [p.strip() for p in record.get(IMAGES_COLUMN, "").split(";") if p.strip()]
                paths = [root / p for p in listed] if listed else [root / relative]
                if not all(_inside(path, root) for path in paths):
                    report.unsafe_paths.append(item_id)
                    continue
                if not paths[0].is_file():
                    report.missing_images.append(item_id)
                    continue
                more = []
                for n, path in enumerate(paths[1:], 1):
                    if path.is_file():
                        more.append(path)
                    else:  # a missing further photo is reported; the product keeps the others
                        report.missing_images.append(f"{item_id} (photo {n}: {listed[n]})")
                items.append(CatalogItem(item_id, paths[0], {c: record[c] for c in keep}, tuple(more)))
        except csv.Error as exc:
            raise FashionrecError(f"{csv_path}: unreadable CSV near line {reader.line_num}: {exc}") from None
    return Catalog(items=items, report=report, columns=keep)


def file_digest(path: Path) -> str:
    """Content hash of an image file: how incremental indexing knows an image changed."""
    with path.open("rb") as handle:  # streamed: a huge file must not be read into memory at once
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
