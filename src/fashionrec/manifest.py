"""The manifest: what made a set of vectors, typed and versioned, and the one place it is read and written.

An index records one manifest in its database: the model that made the raw features SQLite keeps. Every published
vector file records the manifest of the vectors it holds: the same model, plus what was applied on top (the
projection head of ``fashionrec train``, or the text alignment of ``fashionrec train-text``). Two manifests with the
same :meth:`Manifest.identity` mean identical raw features, so stored embeddings can be kept.

Versions (``manifest_version``):

1. unversioned (fashionrec before the manifest): the same keys as version 2, without ``manifest_version``.
2. the keys of :class:`Manifest` and ``manifest_version``. No key changed meaning, so a version-1 description reads
   as it is; it is written back as version 2 the next time the index is written (``fashionrec index``/``train``).

A manifest from a newer fashionrec is refused with an :class:`~fashionrec.errors.IndexFormatError` rather than
misread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from fashionrec.errors import IndexFormatError

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 2
SETTING = "model"
"""The database setting (table ``settings``) that holds the index's manifest, as JSON."""


class Settings(Protocol):
    """Where a manifest is kept: an index database (fashionrec.catalog_db.CatalogDB)."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class Manifest:
    """The backbone that made some vectors (name, input size, weights file and its fingerprint, precision), their
    dimension, and the projection head or text alignment applied on top of the raw features, if any."""

    name: str
    dim: int
    image_size: int | None = None
    weights: str | None = None
    weights_fingerprint: str | None = None
    precision: str = "fp32"
    head: str | None = None
    """Fingerprint of the projection head the vectors went through (None: raw backbone features)."""
    text_alignment: str | None = None
    """Checksum of the text alignment the vectors were projected with (text search vectors only)."""

    def identity(self) -> str:
        """What decides the raw features, as a string: equal identities mean identical raw features."""
        return json.dumps([self.name, self.image_size, self.weights_fingerprint, self.precision])

    def same_model(self, other: Manifest | None) -> bool:
        """True when ``other`` was made by the same backbone (its raw features are interchangeable with ours)."""
        return other is not None and self.identity() == other.identity()

    def through_head(self, fingerprint: str | None, dim: int) -> Manifest:
        """The manifest of these features once projected by a head (``fingerprint`` None: no head, unchanged)."""
        return self if fingerprint is None else replace(self, head=fingerprint, dim=dim)

    def aligned(self, checksum: str) -> Manifest:
        """The manifest of these features once projected by a text alignment."""
        return replace(self, text_alignment=checksum)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as files and collections record it (keys of absent layers are left out)."""
        data = {k: v for k, v in asdict(self).items() if v is not None or k in ("image_size", "weights",
                                                                               "weights_fingerprint")}
        return {**data, "manifest_version": MANIFEST_VERSION}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "the index") -> Manifest:
        """Read a recorded manifest of any known version; an :class:`IndexFormatError` naming ``where`` when it is
        not one."""
        if not isinstance(data, dict):
            raise IndexFormatError(f"{where} records no model description")
        version = data.get("manifest_version", 1)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise IndexFormatError(f"{where} was written by a newer fashionrec (manifest version {version}; this "
                                   f"one reads up to {MANIFEST_VERSION}); upgrade fashionrec")
        if version < MANIFEST_VERSION:
            logger.info("%s records manifest version %s: read as version %s (no field changed meaning); it is "
                        "written as version %s when next written", where, version, MANIFEST_VERSION, MANIFEST_VERSION)
        try:
            return cls(
                name=str(data["name"]), dim=int(data["dim"]), image_size=_optional_int(data.get("image_size")),
                weights=_optional_str(data.get("weights")),
                weights_fingerprint=_optional_str(data.get("weights_fingerprint")),
                precision=str(data.get("precision", "fp32")), head=_optional_str(data.get("head")),
                text_alignment=_optional_str(data.get("text_alignment")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{where} has a malformed model description ({exc!r})") from None

    @classmethod
    def from_json(cls, text: str | None, where: str = "the index") -> Manifest | None:
        """A manifest from its JSON form; None for no text, ``null`` or ``{}`` (nothing recorded yet)."""
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            raise IndexFormatError(f"{where} has a malformed model description (not JSON)") from None
        return None if not data else cls.from_dict(data, where)


def recorded_in(data: Any, where: str) -> Manifest | None:
    """The manifest an artifact (a head, a text alignment) records about the features it was trained on; None when
    it records none or one this fashionrec cannot read (the artifact then matches no index)."""
    try:
        return Manifest.from_dict(data, where)
    except IndexFormatError:
        return None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def read_optional(settings: Settings, where: str = "the index") -> Manifest | None:
    """The manifest an index records, or None when no ``fashionrec index`` has finished on it yet."""
    return Manifest.from_json(settings.get_setting(SETTING), where)


def read(settings: Settings, where: str = "the index") -> Manifest:
    """The manifest an index records; an :class:`IndexFormatError` when ``fashionrec index`` never finished."""
    manifest = read_optional(settings, where)
    if manifest is None:
        raise IndexFormatError(f"{where} is incomplete (no model recorded); re-run `fashionrec index`")
    return manifest


def write(settings: Settings, manifest: Manifest) -> None:
    """Record ``manifest`` as the index's (always in the newest version)."""
    settings.set_setting(SETTING, manifest.to_json())
