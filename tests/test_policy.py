"""PolicyConfig.from_dict: what a JSON override may hold."""

from __future__ import annotations

import pytest

from aimo_submit.policy import PolicyConfig
from aimo_submit.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_a_dict(name: str) -> None:
    # every field's annotation is one the type check knows, or a preset would be refused
    policy = PRESETS[name]
    assert PolicyConfig.from_dict(policy.to_dict()) == policy


def test_json_numbers_fit_float_fields_and_none_fits_optional_ones() -> None:
    policy = PolicyConfig.from_dict({"temperature": 1, "seed": None, "extend_factor": 2.5})
    assert policy.temperature == 1 and policy.seed is None and policy.extend_factor == 2.5


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"n_samples": "12"}, "n_samples='12' (wants int)"),
        ({"n_samples": 12.0}, "n_samples=12.0 (wants int)"),
        ({"n_samples": True}, "n_samples=True (wants int)"),
        ({"temperature": "hot"}, "temperature='hot' (wants float)"),
        ({"tir": 1}, "tir=1 (wants bool)"),
        ({"time_rule": None}, "time_rule=None (wants str)"),
        ({"extra": []}, "extra=[] (wants dict[str, Any])"),
        ({"seed": "7"}, "seed='7' (wants int | None)"),
    ],
)
def test_values_of_the_wrong_type_are_refused_by_name(data: dict, named: str) -> None:
    with pytest.raises(ValueError, match="wrong type") as err:
        PolicyConfig.from_dict(data)
    assert named in str(err.value)


def test_unknown_keys_are_refused_before_types() -> None:
    with pytest.raises(ValueError, match="unknown policy keys: n_samplez"):
        PolicyConfig.from_dict({"n_samplez": "x"})
