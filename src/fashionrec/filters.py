"""Metadata filters: ``gender=Women``, ``articleType=Shirts,Tshirts``, ``baseColour=Blue``.

A filter maps a column to the set of accepted values (OR within a column, AND across columns). Filters are
applied *inside* the vector search (as an allowed-id set), so a filtered query still returns k results whenever
k matching items exist, unlike post-filtering a fixed top-k.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fashionrec.errors import FashionrecError

Filters = dict[str, frozenset[str]]


def parse_filters(specs: Iterable[str], columns: Sequence[str] | None = None) -> Filters:
    """Parse ``KEY=V1,V2`` strings; repeated keys narrow nothing, they add values (``a=x --filter a=y``)."""
    out: dict[str, set[str]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip()
        values = {v.strip() for v in value.split(",") if v.strip()}
        if not sep or not key or not values:
            raise FashionrecError(f"bad filter {spec!r}: expected KEY=VALUE or KEY=V1,V2")
        out.setdefault(key, set()).update(values)
    return normalise_filters(out, columns)


def normalise_filters(filters: Mapping[str, Iterable[str]] | None, columns: Sequence[str] | None = None) -> Filters:
    """Validate a filter mapping from any source (CLI, API, Python) against the index's columns."""
    if not filters:
        return {}
    result: Filters = {}
    for key, values in filters.items():
        if columns is not None and key not in columns:
            raise FashionrecError(f"unknown filter column {key!r}; filterable columns: {', '.join(columns)}")
        value_set = frozenset([values] if isinstance(values, str) else (str(v) for v in values))
        if not value_set:
            raise FashionrecError(f"filter {key!r} has no values")
        result[key] = value_set
    return result


class MetadataColumns:
    """Metadata held column-wise in memory, aligned with vector-store positions, for fast filter masks.

    Each column is stored as integer codes plus its vocabulary, so a mask compares small integers (one NumPy
    comparison per column) instead of Python strings, and no per-query work depends on string lengths.
    """

    def __init__(self, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
        self.columns = list(columns)
        self._vocab: dict[str, dict[str, int]] = {}
        self._codes: dict[str, np.ndarray] = {}
        for column in self.columns:
            vocab = self._vocab[column] = {}
            # Exact dict lookups on str objects: "Women\0" stays a value of its own, never "Women".
            self._codes[column] = np.array([vocab.setdefault(r.get(column, ""), len(vocab)) for r in rows], np.int32)
        self.size = len(rows)

    def row(self, position: int) -> dict[str, str]:
        """The metadata of the row at ``position``, as it was given."""
        if not hasattr(self, "_names"):  # reverse vocabularies, built when first needed
            self._names = {c: list(self._vocab[c]) for c in self.columns}
        names = self._names
        for column in self.columns:
            vocab = self._vocab[column]
            if len(names[column]) < len(vocab):
                names[column].extend(list(vocab)[len(names[column]):])
        return {column: names[column][int(self._codes[column][position])] for column in self.columns}

    def append(self, row: Mapping[str, str]) -> None:
        """One more row at the end (a product added by the items API)."""
        for column in self.columns:
            vocab = self._vocab[column]
            self._codes[column] = np.append(self._codes[column], np.int32(vocab.setdefault(row.get(column, ""), len(vocab))))
        self.size += 1

    def set(self, position: int, row: Mapping[str, str]) -> None:
        """New values for the row at ``position``."""
        for column in self.columns:
            vocab = self._vocab[column]
            self._codes[column][position] = vocab.setdefault(row.get(column, ""), len(vocab))

    def delete(self, position: int) -> None:
        """Drop the row at ``position``; later rows move up by one."""
        for column in self.columns:
            self._codes[column] = np.delete(self._codes[column], position)
        self.size -= 1

    # copies with a change, for stores whose readers must keep seeing the rows as they were (fashionrec.stores)
    def _with_codes(self, codes: dict[str, np.ndarray]) -> MetadataColumns:
        """A copy holding ``codes`` (one array per column, all of one length), sharing the vocabularies (which
        only ever grow, so codes this copy and the original hold keep their meaning)."""
        copy = object.__new__(MetadataColumns)
        copy.columns, copy._vocab, copy._codes = self.columns, self._vocab, codes
        copy.size = len(next(iter(codes.values()))) if codes else self.size
        return copy

    def _code(self, column: str, row: Mapping[str, str]) -> int:
        vocab = self._vocab[column]
        return vocab.setdefault(row.get(column, ""), len(vocab))

    def appended(self, rows: Sequence[Mapping[str, str]]) -> MetadataColumns:
        """A copy with ``rows`` added at the end."""
        codes = {c: np.concatenate([self._codes[c], np.array([self._code(c, r) for r in rows], np.int32)])
                 for c in self.columns}
        return self._with_codes(codes) if self.columns else self._sized(self.size + len(rows))

    def changed(self, positions: Sequence[int], row: Mapping[str, str]) -> MetadataColumns:
        """A copy where the rows at ``positions`` hold ``row``."""
        codes = {c: self._codes[c].copy() for c in self.columns}
        for column in self.columns:
            codes[column][list(positions)] = self._code(column, row)
        return self._with_codes(codes) if self.columns else self._sized(self.size)

    def taken(self, positions: np.ndarray) -> MetadataColumns:
        """A copy holding the rows at ``positions``, in that order."""
        codes = {c: self._codes[c][positions] for c in self.columns}
        return self._with_codes(codes) if self.columns else self._sized(len(positions))

    def spread(self, positions: np.ndarray, size: int) -> MetadataColumns:
        """A copy of ``size`` rows where row ``positions[i]`` holds row ``i`` of this one (the others are empty)."""
        codes = {}
        for column in self.columns:
            codes[column] = np.full(size, self._code(column, {}), np.int32)
            codes[column][positions] = self._codes[column]
        return self._with_codes(codes) if self.columns else self._sized(size)

    def _sized(self, size: int) -> MetadataColumns:
        copy = self._with_codes({})
        copy.size = size
        return copy

    def values(self, column: str) -> builtins.set[str]:
        """Every value ``column`` takes (``""`` for products without one)."""
        return set(self._vocab[column])

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Boolean mask of rows that pass every filter; None when there is no filter (everything passes)."""
        if not filters:
            return None
        mask = np.ones(self.size, dtype=bool)
        for key, values in filters.items():
            if key not in self._codes:
                raise FashionrecError(f"unknown filter column {key!r}; filterable columns: {', '.join(self.columns)}")
            accepted = np.zeros(len(self._vocab[key]), dtype=bool)  # per code: is this value wanted
            accepted[[self._vocab[key][v] for v in values if v in self._vocab[key]]] = True
            mask &= accepted[self._codes[key]]
        return mask
