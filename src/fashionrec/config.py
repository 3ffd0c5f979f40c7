"""Defaults for every command, each overridable by an environment variable.

Flags win over environment variables, which win over these defaults. Nothing here is mutated at run time:
``env_default`` is read once when a parser is built, so there is no hidden global state.
"""

from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    "FASHIONREC_INDEX_DIR": "index",
    "FASHIONREC_MODEL": "efficientnet-lite2",
    "FASHIONREC_BACKEND": "auto",
    "FASHIONREC_PRECISION": "fp32",
    "FASHIONREC_BATCH_SIZE": "32",
    "FASHIONREC_STORE": "faiss",
    "FASHIONREC_MILVUS_URI": "",
    "FASHIONREC_MILVUS_COLLECTION": "fashionrec",
    "FASHIONREC_ENGINE": "local",
    "FASHIONREC_HOST": "127.0.0.1",
    "FASHIONREC_PORT": "8000",
    "FASHIONREC_MAX_UPLOAD_MB": "10",
    "FASHIONREC_MAX_PIXELS": "40000000",
    "FASHIONREC_CORS_ORIGINS": "",
    "FASHIONREC_HYBRID_WEIGHT": "0.1",
    "FASHIONREC_CONSENSUS_WEIGHT": "0",
    "FASHIONREC_CONSENSUS_COLUMN": "articleType",
    "FASHIONREC_LOCALISE": "0",
}


def env_default(name: str) -> str:
    """The value of ``name`` from the environment, or its built-in default."""
    return os.environ.get(name, DEFAULTS[name])
