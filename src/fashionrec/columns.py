"""What the catalogue's columns mean: which one is the **label** ("the same kind of product": Myntra's
``articleType``, a shop's ``category``), which one the **colour**, which one the product's **name**, and which
further columns are **auxiliary labels** (learnt beside the label, reported as agreement).

Recorded in the index (the ``column_roles`` setting of its database), so training, evaluation, the neighbours'
vote (``--consensus``), the web page (through ``/api/facets``) and contact sheets all read the same answer, and
changed without re-embedding anything (``fashionrec index --label COLUMN`` again, or ``fashionrec train --label
COLUMN``). Nothing else in fashionrec names a catalogue column except as a default: when a role is not given, the
first of its usual names that the catalogue has is taken (Myntra's names first), else the role is left empty.

    >>> roles = ColumnRoles.defaults(["sku", "category", "title"])
    >>> roles.label, roles.colour, roles.name
    ('category', None, 'title')
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from fashionrec.errors import FashionrecError

SETTING = "column_roles"  # the database setting that records them (JSON)

# Usual names of each role, tried in order when a role is not given (Myntra's first: every Myntra default holds).
LABEL_NAMES = ("articleType", "category", "product_type", "type", "class")
COLOUR_NAMES = ("baseColour", "colour", "color")
NAME_NAMES = ("productDisplayName", "name", "title")
AUX_NAMES = ("subCategory", "gender")
LEARNT_ORDER = ("subCategory", "baseColour", "gender")  # the order the shipped heads learnt Myntra's columns in


class Settings(Protocol):
    """Where roles are recorded: the index database (fashionrec.catalog_db.CatalogDB)."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...

    @property
    def columns(self) -> list[str]: ...


@dataclass(frozen=True)
class ColumnRoles:
    """The meaning of the catalogue's columns; None (or empty ``aux``) when the catalogue has no such column."""

    label: str | None = None
    colour: str | None = None
    name: str | None = None
    aux: tuple[str, ...] = ()

    @classmethod
    def defaults(cls, columns: Sequence[str]) -> ColumnRoles:
        """The usual names present in ``columns`` (Myntra's ``articleType``, ``baseColour``,
        ``productDisplayName``, ``subCategory`` and ``gender`` when present)."""
        present = set(columns)

        def first(names: Sequence[str]) -> str | None:
            return next((n for n in names if n in present), None)

        label = first(LABEL_NAMES)
        return cls(label=label, colour=first(COLOUR_NAMES), name=first(NAME_NAMES),
                   aux=tuple(n for n in AUX_NAMES if n in present and n != label))

    @property
    def agreement_columns(self) -> tuple[str, ...]:
        """The columns evaluation reports agreement on: the auxiliary labels, then the colour."""
        return tuple(dict.fromkeys([*self.aux, *([self.colour] if self.colour else [])]))

    @property
    def learnt_columns(self) -> tuple[str, ...]:
        """The auxiliary columns training learns beside the label: the auxiliary labels and the colour."""
        learnt = [c for c in dict.fromkeys([*self.aux, *([self.colour] if self.colour else [])]) if c != self.label]
        known = [c for c in LEARNT_ORDER if c in learnt]  # a Myntra index trains exactly as before roles existed
        return (*known, *(c for c in learnt if c not in known))

    def require_label(self, where: str) -> str:
        """The label column, or one clear error naming what to do."""
        if not self.label:
            raise FashionrecError(f"{where} has no label column (what makes two products the same kind); name one "
                                  "with `fashionrec index --label COLUMN` or `fashionrec train --label COLUMN`")
        return self.label

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "colour": self.colour, "name": self.name, "aux": list(self.aux)}

    @classmethod
    def from_dict(cls, data: Any) -> ColumnRoles:
        if not isinstance(data, dict):
            raise FashionrecError(f"column roles must be a JSON object, got {data!r}")

        def one(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        aux = data.get("aux") or []
        return cls(label=one("label"), colour=one("colour"), name=one("name"),
                   aux=tuple(str(a) for a in aux) if isinstance(aux, list) else ())

    def only(self, columns: Sequence[str]) -> ColumnRoles:
        """These roles without the columns that are no longer in ``columns`` (a catalogue that dropped one)."""
        present = set(columns)

        def kept(column: str | None) -> str | None:
            return column if column in present else None

        return ColumnRoles(kept(self.label), kept(self.colour), kept(self.name),
                           tuple(a for a in self.aux if a in present))


def parse_columns(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``("a", "b")``; None stays None (not given), ``""`` is no column."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def resolve(
    columns: Sequence[str], base: ColumnRoles | None = None, *, label: str | None = None,
    colour: str | None = None, name: str | None = None, aux: str | Iterable[str] | None = None,
) -> ColumnRoles:
    """The roles of a catalogue with ``columns``: ``base`` (what was recorded; its columns still present), else the
    defaults, with each role given here replacing it. A given column that is not among ``columns`` is an error
    naming the argument; ``""`` clears a role."""
    roles = (base or ColumnRoles.defaults(columns)).only(columns)

    def check(argument: str, column: str) -> str | None:
        if column and column not in columns:
            raise FashionrecError(f"{argument} {column!r} is not a column of the catalogue; columns: "
                                  f"{', '.join(columns) or '(none)'}")
        return column or None

    changes: dict[str, Any] = {}
    if label is not None:
        changes["label"] = check("label", label.strip())
    if colour is not None:
        changes["colour"] = check("colour column", colour.strip())
    if name is not None:
        changes["name"] = check("name column", name.strip())
    parsed = parse_columns(aux)
    if parsed is not None:
        changes["aux"] = tuple(c for c in parsed if check("auxiliary label", c))
    roles = replace(roles, **changes)
    if roles.label in roles.aux:
        roles = replace(roles, aux=tuple(a for a in roles.aux if a != roles.label))
    return roles


def recorded_roles(db: Settings) -> ColumnRoles | None:
    """The roles an index records, as recorded (None when it records none)."""
    stored = db.get_setting(SETTING)
    if not stored:
        return None
    try:
        data = json.loads(stored)
    except ValueError:
        raise FashionrecError(f"the index's {SETTING} setting is not JSON: {stored[:80]!r}") from None
    return ColumnRoles.from_dict(data)


def read_roles(db: Settings) -> ColumnRoles:
    """The roles recorded in an index (the defaults of its columns when none are recorded: an index made before
    roles existed reads as it always did), restricted to the columns it still has."""
    columns = db.columns
    recorded = recorded_roles(db)
    return ColumnRoles.defaults(columns) if recorded is None else recorded.only(columns)


def write_roles(db: Settings, roles: ColumnRoles) -> None:
    db.set_setting(SETTING, json.dumps(roles.to_dict()))


def load_mapping(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A photo mapping: the JSON object {photo class: [acceptable values of the label column, ...]} at ``path``
    (for Myntra, ``mapping.json`` names articleTypes; for a shop labelled by ``category``, categories)."""
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FashionrecError(f"cannot read mapping {path}: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, list) for v in mapping.values()):
        raise FashionrecError(f"{path}: expected a JSON object class -> list of label values")
    return {str(k): [str(x) for x in v] for k, v in mapping.items()}
