"""Typed response bodies: they validate what the server sends and document it in ``/openapi.json``."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from fashionrec.catalog_db import StoredItem
from fashionrec.look import LookGarment
from fashionrec.recommend import Result


class ErrorOut(BaseModel):
    """Every 4xx/5xx body."""

    error: str = Field(description="what was wrong, in one line")
    detail: Any = Field(default=None, description="structured details when there are any (e.g. validation errors)")


class ItemOut(BaseModel):
    """A catalogue product."""

    id: str
    image_url: str = Field(description="the product photo, served by `GET /images/{id}`")
    metadata: dict[str, str] = Field(description="every metadata column of the catalogue CSV")


class ResultOut(ItemOut):
    """A recommended product, best first."""

    rank: int = Field(ge=1)
    score: float = Field(description="cosine similarity to the query, higher is more similar (at most 1)")
    photo: int = Field(default=0, ge=0, description="which of the product's photos matched best (0: its first or "
                       "only one); served by `GET /images/{id}?photo=N`")


class ResultsOut(BaseModel):
    """A ranked result list and the parameters that produced it."""

    k: int
    filters: dict[str, list[str]] = Field(description="the filters applied inside the search, by column")
    results: list[ResultOut]


class QueryImageOut(BaseModel):
    """What the server saw in the uploaded file."""

    format: str = Field(description="decoded format, e.g. JPEG, PNG")
    width: int
    height: int


class SteeredOut(ResultsOut):
    """A ranked list the shopper may have steered with examples or a changed attribute."""

    like: list[str] = Field(default_factory=list, description="the liked products the answer moved toward")
    unlike: list[str] = Field(default_factory=list, description="the disliked products the answer moved away from")
    differ: str | None = Field(default=None, description="the column whose value every result has changed")


class RecommendOut(SteeredOut):
    """Products similar to an uploaded photo."""

    query: QueryImageOut
    box: list[int] | None = Field(
        default=None, description="the region of the photo that was searched, in pixels: x, y, w, h (none: all of it)"
    )


class GarmentOut(BaseModel):
    """One garment found in the photo, with its own products."""

    label: str = Field(description="the garment's class (a class of the server's garments.json, e.g. `shoes`)")
    box: list[int] = Field(min_length=4, max_length=4,
                           description="where it is in the uploaded photo, in pixels: x, y, w, h")
    score: float = Field(ge=0, le=1, description="the localiser's confidence that this is such a garment")
    results: list[ResultOut] = Field(description="the products most similar to this garment, best first")


class LookOut(BaseModel):
    """Shop the look: the garments found in an uploaded photo of an outfit, most confident first."""

    k: int = Field(description="products per garment")
    filters: dict[str, list[str]] = Field(description="the filters applied inside every garment's search, by column")
    query: QueryImageOut
    garments: list[GarmentOut] = Field(description="most confident first; a garment the catalogue has no product "
                                       "for (under the filters) is left out")


class SimilarOut(SteeredOut):
    """Products similar to a catalogue product (never the product itself)."""

    item: ItemOut


class ValueCount(BaseModel):
    value: str
    count: int


class FacetOut(BaseModel):
    """One filterable column and its values, most frequent first."""

    column: str
    values: list[ValueCount]


class ColumnRolesOut(BaseModel):
    """What the catalogue's columns mean, as the index records them (fashionrec.columns)."""

    label: str | None = Field(default=None, description="the column that says which products are the same kind "
                              "(e.g. `articleType`, `category`); the neighbours' vote (`consensus`) is on it")
    colour: str | None = Field(default=None, description="the colour column (`differ=` it for \"other colours\")")
    name: str | None = Field(default=None, description="the product name column")
    aux: list[str] = Field(default_factory=list, description="further label columns")


class FacetsOut(BaseModel):
    items: int = Field(description="products in the catalogue")
    facets: list[FacetOut] = Field(description="columns with few enough distinct values to offer as filter choices")
    other_columns: list[str] = Field(description="columns still usable in `filter=` but with too many values to list")
    roles: ColumnRolesOut = Field(default_factory=ColumnRolesOut, description="what the columns mean")


class TrendChartOut(BaseModel):
    column: str
    title: str
    counts: list[ValueCount]
    other: int = Field(description="products whose value is beyond the chart's most frequent ones")
    missing: int = Field(description="products without a value in this column")


class TrendsOut(BaseModel):
    items: int
    charts: list[TrendChartOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    items: int = Field(description="vectors in the loaded index")
    model: str
    dim: int
    numerics: str = Field(description='what the model computes in: "fp32", or "int8 (<scheme>)" as quantised for '
                          "this CPU (docs/models.md, int8)")


def image_url(item_id: str) -> str:
    return f"/images/{quote(item_id, safe='')}"


def item_out(item: StoredItem) -> ItemOut:
    return ItemOut(id=item.id, image_url=image_url(item.id), metadata=item.metadata)


def results_out(results: list[Result]) -> list[ResultOut]:
    return [
        ResultOut(id=r.id, image_url=image_url(r.id), metadata=r.metadata, rank=rank, score=round(r.score, 6),
                  photo=r.photo)
        for rank, r in enumerate(results, 1)
    ]


def garments_out(garments: list[LookGarment]) -> list[GarmentOut]:
    return [GarmentOut(label=g.label, box=list(g.box), score=round(g.score, 4), results=results_out(g.results))
            for g in garments]
