"""The HTTP service: a FastAPI app over one :class:`~fashionrec.recommend.Recommender`, plus the web page.

    >>> from fashionrec.api import ApiSettings, create_app
    >>> app = create_app(Recommender.open("index"), settings=ApiSettings(max_upload_bytes=5 * 2**20))

``fashionrec serve`` does exactly this and runs the app with uvicorn.
"""

from fashionrec.api.app import create_app
from fashionrec.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
