"""``RankingConfig``: how an open :class:`~fashionrec.recommend.Recommender` ranks and prepares queries.

The library never reads the environment for these: a Recommender opened without a config gets the built-in
defaults. The command line and the API read the ``FASHIONREC_*`` variables once, at the edge
(:meth:`RankingConfig.from_env`), validate them there (one clear error line) and pass the result in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fashionrec.config import VARIABLES, env_default
from fashionrec.feedback import DEFAULT_METHOD
from fashionrec.hybrid import parse_weight
from fashionrec.localise import parse_switch


@dataclass(frozen=True)
class RankingConfig:
    """Ranking and query options; every field has a ``FASHIONREC_*`` variable (see :meth:`from_env`)."""

    hybrid_weight: float = float(VARIABLES["FASHIONREC_HYBRID_WEIGHT"].default)
    consensus_weight: float = float(VARIABLES["FASHIONREC_CONSENSUS_WEIGHT"].default)
    consensus_column: str = VARIABLES["FASHIONREC_CONSENSUS_COLUMN"].default
    localise: bool = VARIABLES["FASHIONREC_LOCALISE"].default == "1"  # crop query photos to the garment first
    feedback_method: str = DEFAULT_METHOD  # how liked / disliked products steer a query (fashionrec.feedback)
    steer_kind: bool = VARIABLES["FASHIONREC_STEER_KIND"].default == "1"  # search among the query's garment kind

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RankingConfig:
        """The options ``FASHIONREC_HYBRID_WEIGHT``, ``FASHIONREC_CONSENSUS_WEIGHT``, ``FASHIONREC_CONSENSUS_COLUMN``,
        ``FASHIONREC_LOCALISE`` and ``FASHIONREC_STEER_KIND`` set in ``environ`` (default: the process environment), checked; the
        built-in default for each one unset."""
        return cls(
            hybrid_weight=parse_weight(env_default("FASHIONREC_HYBRID_WEIGHT", environ)),
            consensus_weight=parse_weight(env_default("FASHIONREC_CONSENSUS_WEIGHT", environ), "consensus weight"),
            consensus_column=env_default("FASHIONREC_CONSENSUS_COLUMN", environ),
            localise=parse_switch(env_default("FASHIONREC_LOCALISE", environ)),
            steer_kind=parse_switch(env_default("FASHIONREC_STEER_KIND", environ)),
        )
