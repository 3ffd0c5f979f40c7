"""The JSON API and the catalogue images: thin handlers over :class:`RecommenderService`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from fashionrec.api.models import (
    ErrorOut,
    FacetsOut,
    HealthOut,
    ItemOut,
    LookOut,
    RecommendOut,
    SimilarOut,
    SteeredOut,
    TrendsOut,
)
from fashionrec.api.params import (
    Consensus,
    CropBox,
    Differ,
    FilterSpecs,
    GarmentLabel,
    K,
    LikeIds,
    PreferSpecs,
    UnlikeIds,
)
from fashionrec.api.service import RecommenderService, get_service
from fashionrec.api.uploads import UPLOAD_OPENAPI, read_upload

Service = Annotated[RecommenderService, Depends(get_service)]

ERRORS: dict[int | str, dict[str, Any]] = {"4XX": {"model": ErrorOut, "description": "bad request; `error` says what was wrong"}}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "empty file, or a bad filter"},
    413: {"model": ErrorOut, "description": "file over the byte limit, or image over the pixel limit"},
    415: {"model": ErrorOut, "description": "not multipart, or not a JPEG/PNG/WebP/GIF/BMP image"},
    422: {"model": ErrorOut, "description": "no `file` field, malformed body, truncated or corrupt image"},
}

router = APIRouter(responses=ERRORS)


@router.post(
    "/api/recommend", response_model=RecommendOut, responses=UPLOAD_ERRORS, openapi_extra=UPLOAD_OPENAPI,
    summary="Products similar to an uploaded photo",
)
async def recommend(
    request: Request, service: Service, filters: FilterSpecs = [], k: K = 5, prefer: PreferSpecs = [],
    consensus: Consensus = None, box: CropBox = None, like: LikeIds = [], unlike: UnlikeIds = [], differ: Differ = None,
    garment: GarmentLabel = None,
) -> RecommendOut:
    """Upload a photo as multipart field `file`; get the k most similar catalogue products, best first.

    The shopper can steer the answer: `box` searches only a region of the photo, `like` / `unlike` move it toward
    / away from catalogue products (the page sends every choice again with each query: the server keeps nothing),
    `differ` asks for products that differ from the liked ones in one column, and `garment` (with `box`: a garment
    `/api/look` found) searches among that garment class's catalogue values. The upload is held in memory only,
    never written to disk; its file name and content type are ignored.
    """
    parsed, preferences = service.parse_filters(filters), service.parse_preferences(prefer)
    data = await read_upload(request, service.settings.max_upload_bytes)
    return await run_in_threadpool(service.recommend_upload, data, k, parsed, preferences, consensus, box, like,
                                   unlike, differ, garment)


@router.post(
    "/api/look", response_model=LookOut, responses=UPLOAD_ERRORS, openapi_extra=UPLOAD_OPENAPI,
    summary="Shop the look: the garments in an uploaded photo of an outfit, each with its products",
)
async def look(request: Request, service: Service, filters: FilterSpecs = [], k: K = 5) -> LookOut:
    """Upload a photo of a whole outfit as multipart field `file` (same limits and errors as `/api/recommend`);
    get the garments found in it, most confident first, each with its label, its box in the photo's pixels
    (`x, y, w, h`), the localiser's confidence and its own k products, shaped as `/api/recommend`'s results. Each
    garment is searched among its class's catalogue values (the server's `garments.json`) unless a filter names
    that column. To search one garment with more options, send its box and label to
    `/api/recommend?box=x,y,w,h&garment=LABEL`."""
    parsed = service.parse_filters(filters)
    data = await read_upload(request, service.settings.max_upload_bytes)
    return await run_in_threadpool(service.look_upload, data, k, parsed)


@router.get("/api/items/{item_id}", response_model=ItemOut, summary="One catalogue product")
def item(item_id: str, service: Service) -> ItemOut:
    return service.item(item_id)


@router.get("/api/items/{item_id}/similar", response_model=SimilarOut, summary="More like this product")
def similar(
    item_id: str, service: Service, filters: FilterSpecs = [], k: K = 5, prefer: PreferSpecs = [],
    consensus: Consensus = None, like: LikeIds = [], unlike: UnlikeIds = [], differ: Differ = None,
) -> SimilarOut:
    """The k products most similar to catalogue product `item_id`, never including it; `like` / `unlike` steer
    the answer toward / away from other products, and `differ=baseColour` gives "the same style in another
    colour" (any column works: `differ=gender`, `differ=season`)."""
    return service.similar(item_id, k, service.parse_filters(filters), service.parse_preferences(prefer), consensus,
                           like, unlike, differ)


@router.get("/api/examples", response_model=SteeredOut, summary="Products like some products and unlike others")
def examples(
    service: Service, like: LikeIds = [], unlike: UnlikeIds = [], filters: FilterSpecs = [], k: K = 5,
    prefer: PreferSpecs = [], consensus: Consensus = None, differ: Differ = None,
) -> SteeredOut:
    """A query made of examples alone (at least one `like`): with one liked product it answers exactly what
    `/api/items/{id}/similar` answers for it."""
    return service.examples(like, unlike, k, service.parse_filters(filters), service.parse_preferences(prefer),
                            consensus, differ)


@router.get("/api/facets", response_model=FacetsOut, summary="Filterable columns with their values and counts")
def facets(service: Service) -> FacetsOut:
    return service.facets


@router.get("/api/trends", response_model=TrendsOut, summary="Catalogue statistics for charts")
def trends(service: Service) -> TrendsOut:
    """Category distribution, top colours, seasons, years and gender split (charts for missing columns are left out)."""
    return service.trends


@router.get(
    "/images/{item_id}", response_class=FileResponse, summary="A product's catalogue photo",
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the image file"}},
)
def image(item_id: str, service: Service, photo: Annotated[int, Query(ge=0, le=64)] = 0) -> FileResponse:
    """Looked up by product id in the index; clients cannot name a file path. `photo=N` asks for a product's
    N-th further photo (products given several through `PUT /api/items/{id}`; results name the one that matched)."""
    return FileResponse(service.image_path(item_id, photo), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/healthz", response_model=HealthOut, summary="Liveness and what is loaded")
def healthz(service: Service) -> HealthOut:
    return service.health()
