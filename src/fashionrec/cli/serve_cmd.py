"""``fashionrec serve``: the REST API and the web page over one index, loaded once at start-up."""

from __future__ import annotations

import argparse
import sys

from fashionrec.cli.common import (
    add_index_dir,
    add_ranking_options,
    add_store_options,
    apply_ranking_options,
    open_recommender,
)
from fashionrec.config import env_default
from fashionrec.errors import FashionrecError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the REST API and the web page (http://127.0.0.1:8000/)")
    add_index_dir(p)
    add_store_options(p)
    p.add_argument("--host", default=env_default("FASHIONREC_HOST"),
                   help="address to listen on; 0.0.0.0 for every interface (env FASHIONREC_HOST, default: %(default)s)")
    p.add_argument("--port", type=int, default=int(env_default("FASHIONREC_PORT").strip()),
                   help="TCP port (env FASHIONREC_PORT, default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=float(env_default("FASHIONREC_MAX_UPLOAD_MB")),
                   help="largest accepted upload in MiB (env FASHIONREC_MAX_UPLOAD_MB, default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=int(env_default("FASHIONREC_MAX_PIXELS").strip()),
                   help="largest accepted image in pixels, width x height (env FASHIONREC_MAX_PIXELS, "
                        "default: %(default)s)")
    p.add_argument("--body-timeout", type=float, default=float(env_default("FASHIONREC_BODY_TIMEOUT")),
                   metavar="SECONDS", help="a request body must arrive in full within this time, else 408 "
                   "(env FASHIONREC_BODY_TIMEOUT, default: %(default)s)")
    p.add_argument("--header-timeout", type=float, default=float(env_default("FASHIONREC_HEADER_TIMEOUT")),
                   metavar="SECONDS", help="a request's line and headers must arrive within this time, else the "
                   "connection is closed (env FASHIONREC_HEADER_TIMEOUT, default: %(default)s)")
    p.add_argument("--refresh", type=float, default=1.0, metavar="SECONDS",
                   help="check this often for a new index generation (a re-index, a new head, `fashionrec add`) "
                   "and switch to it between requests; 0: never (POST /admin/reload still does) "
                   "(default: %(default)s)")
    add_ranking_options(p)
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="web origin allowed to call the API from a browser, e.g. https://shop.example; repeat for "
                        "several (env FASHIONREC_CORS_ORIGINS, comma-separated; default: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: FastAPI is slow to import for other commands
    from fashionrec.api import ApiSettings, create_app, server
    from fashionrec.api.settings import MIB

    if not 0 <= args.port <= 65535:
        raise FashionrecError(f"--port must be between 0 and 65535, got {args.port}")
    if not 0 <= args.refresh < float("inf"):
        raise FashionrecError(f"--refresh must be 0 or a positive number of seconds, got {args.refresh}")
    for flag, seconds in (("--body-timeout", args.body_timeout), ("--header-timeout", args.header_timeout)):
        if not 0 < seconds < float("inf"):
            raise FashionrecError(f"{flag} must be a positive number of seconds, got {seconds}")
    origins = args.cors_origin or [o.strip() for o in env_default("FASHIONREC_CORS_ORIGINS").split(",") if o.strip()]
    settings = ApiSettings(
        max_upload_bytes=int(args.max_upload_mb * MIB), max_pixels=args.max_pixels, cors_origins=tuple(origins),
        body_timeout_s=args.body_timeout, api_key=env_default("FASHIONREC_API_KEY") or None,
    )
    with open_recommender(args) as rec:
        apply_ranking_options(args, rec)
        app = create_app(rec, settings=settings)

        def ready(port: int) -> None:
            print(f"fashionrec: serving {len(rec)} products on http://{args.host}:{port}/ "
                  f"(API docs at /docs); Ctrl-C stops", file=sys.stderr)

        service = app.state.service
        if args.refresh > 0:
            service.start_refresh(args.refresh)
        try:
            server.serve(app, args.host, args.port, args.header_timeout, ready)  # can't bind: one line, exit 2
        finally:
            service.close()
    return 0
