"""fashionrec.ranking: the ranking options are read from the environment at the edge, checked, defaulted."""

from __future__ import annotations

import pytest

from fashionrec.config import VARIABLES
from fashionrec.errors import FashionrecError
from fashionrec.ranking import RankingConfig


def test_an_empty_environment_gives_the_built_in_defaults() -> None:
    config = RankingConfig.from_env({})
    assert config == RankingConfig()
    assert config.hybrid_weight == float(VARIABLES["FASHIONREC_HYBRID_WEIGHT"].default)
    assert config.localise is False and config.consensus_weight == 0


def test_set_variables_are_read_and_parsed() -> None:
    config = RankingConfig.from_env({"FASHIONREC_HYBRID_WEIGHT": "0.3", "FASHIONREC_CONSENSUS_WEIGHT": "0.5",
                                     "FASHIONREC_CONSENSUS_COLUMN": "baseColour", "FASHIONREC_LOCALISE": "1"})
    assert (config.hybrid_weight, config.consensus_weight, config.consensus_column, config.localise) == (
        0.3, 0.5, "baseColour", True)


@pytest.mark.parametrize(("name", "value"), [("FASHIONREC_HYBRID_WEIGHT", "heavy"),
                                             ("FASHIONREC_CONSENSUS_WEIGHT", "-1"),
                                             ("FASHIONREC_LOCALISE", "yes")])
def test_a_bad_value_is_one_clear_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(FashionrecError, match=name) as error:
        RankingConfig.from_env({name: value})
    assert "\n" not in str(error.value)
