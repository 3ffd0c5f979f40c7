"""Query parameters shared by every route that returns ranked results (photo, similar, and text search)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from fashionrec.feedback import BOX_PATTERN, MAX_EXAMPLES
from fashionrec.recommend import MAX_K

K = Annotated[int, Query(ge=1, le=MAX_K, description="number of results")]

FilterSpecs = Annotated[
    list[str],
    Query(
        alias="filter",
        description=(
            "Metadata filter `COLUMN=VALUE` or `COLUMN=V1,V2` (any of the values). Repeat the parameter to filter "
            "several columns (all must match): `?filter=gender=Women&filter=articleType=Heels,Flats`. Filters are "
            "applied inside the vector search, so k results come back whenever k products match. Columns and "
            "values: `GET /api/facets`."
        ),
        examples=["gender=Women", "articleType=Shirts,Tshirts"],
    ),
]

PreferSpecs = Annotated[
    list[str],
    Query(
        alias="prefer",
        description=(
            "Soft preference `COLUMN=VALUE` (hybrid ranking): products agreeing with it move up, the others stay "
            "in the ranking. Repeatable: `?prefer=gender=Women&prefer=baseColour=Blue`."
        ),
        examples=["baseColour=Blue"],
    ),
]

Consensus = Annotated[
    float | None,
    Query(
        ge=0, le=10,
        description=(
            "Weight of the nearest products' vote on the query's articleType (0 = off; default: the server's "
            "`--consensus`, off unless set). More results of the kind the query most likely is, less variety "
            "(measured in docs/quality.md)."
        ),
        examples=[0.5],
    ),
]


def _example_ids(judged: str, moves: str) -> Any:
    return Query(
        max_length=MAX_EXAMPLES,
        description=(
            f"Relevance feedback: a catalogue product id the shopper {judged} (repeatable, at most {MAX_EXAMPLES}). "
            f"The answer moves {moves} these products; they never come back themselves. An unknown id is a 422."
        ),
        examples=["15970"],
    )


LikeIds = Annotated[list[str], _example_ids("liked", "toward")]
UnlikeIds = Annotated[list[str], _example_ids("disliked", "away from")]

Differ = Annotated[
    str | None,
    Query(
        min_length=1, max_length=200,
        description=(
            "A metadata column (e.g. `baseColour`): only products whose value in it differs from the reference "
            "product's (the product itself on `/similar`, the liked products on `/api/recommend`) and is not empty: "
            "\"the same style in another colour\". Applied inside the vector search, like a filter, so k results "
            "still come back."
        ),
        examples=["baseColour"],
    ),
]

CropBox = Annotated[
    str | None,
    Query(
        pattern=BOX_PATTERN,
        description=(
            "Use only this region of the photo: `x,y,w,h` in pixels, or in fractions of the width and height when "
            "all four values are at most 1 (`0.2,0.1,0.6,0.7`). A box reaching outside the image, or of zero area, "
            "is a 422."
        ),
        examples=["0.2,0.1,0.6,0.7", "40,30,160,220"],
    ),
]

GarmentLabel = Annotated[
    str | None,
    Query(
        min_length=1, max_length=100,
        description=(
            "A garment class of `/api/look`'s answers (e.g. `shoes`): search only among that class's catalogue "
            "values, as shop the look searches its garments (a `filter` on the same column wins); with `box` set to "
            "that garment's box, the web page's search of one garment. An unknown class is a 422."
        ),
        examples=["shoes"],
    ),
]
