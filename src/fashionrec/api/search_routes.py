"""``GET /api/search?q=``: text search, plugged into the app by ``create_app`` when this module exists.

The text searcher (sentence encoder or CLIP text tower, and the text vectors) is opened on the first search, not
at start-up: an index without text search still serves photos, and answers text queries with a clear 404.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from fashionrec.api.errors import ApiError
from fashionrec.api.models import ErrorOut, ResultsOut, results_out
from fashionrec.api.params import FilterSpecs, K
from fashionrec.api.service import RecommenderService, get_service
from fashionrec.errors import IndexFormatError
from fashionrec.text.searcher import MAX_QUERY_CHARS, TextSearcher

router = APIRouter(responses={"4XX": {"model": ErrorOut, "description": "bad request; `error` says what was wrong"}})
_open_lock = threading.Lock()


class SearchOut(ResultsOut):
    """Products matching a text query, best first."""

    query: str


def get_searcher(request: Request, service: Annotated[RecommenderService, Depends(get_service)]) -> TextSearcher:
    """The app's text searcher, opened once (on first use) from the served index directory."""
    state = request.app.state
    with _open_lock:
        if getattr(state, "text_searcher", None) is None:
            try:
                state.text_searcher = TextSearcher.open(service.recommender.index_dir)
            except IndexFormatError as exc:
                raise ApiError(404, f"text search is not available for this index: {exc}") from None
        searcher: TextSearcher = state.text_searcher
    return searcher


@router.get(
    "/api/search", response_model=SearchOut, summary="Products matching a text",
    responses={404: {"model": ErrorOut, "description": "the index has no text search (run `fashionrec train-text`)"}},
)
async def search(
    service: Annotated[RecommenderService, Depends(get_service)],
    searcher: Annotated[TextSearcher, Depends(get_searcher)],
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="what to look for")],
    filters: FilterSpecs = [],
    k: K = 5,
) -> SearchOut:
    """E.g. `?q=red floral summer dress&filter=gender=Women`: the k products that best match the words."""
    parsed = service.parse_filters(filters)
    results = await run_in_threadpool(searcher.search, q, k, parsed)
    return SearchOut(k=k, filters={c: sorted(v) for c, v in parsed.items()}, results=results_out(results), query=q.strip())
