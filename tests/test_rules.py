import pytest

from lockstep.rules import SIM_VERSION, Rules, RulesError, rules_id, split_rules_id


def test_default_rules_round_trip_through_encoding():
    rules = Rules()
    assert Rules.decode(rules.encode()) == rules


def test_rules_id_carries_sim_version_and_rules():
    version, encoded = split_rules_id(rules_id(Rules(points_to_win=5)))
    assert version == SIM_VERSION
    assert Rules.decode(encoded).points_to_win == 5
    assert rules_id(Rules()) != rules_id(Rules(points_to_win=5))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"points_to_win": 0}, "points_to_win"),
        ({"paddle_h": 480 * 256}, "paddle"),
        ({"ball_speed_max": 200 * 256}, "ball_speed_max"),
        ({"frame_limit": -1}, "frame_limit"),
        ({"serve_vy_max": 9 * 256}, "serve_vy_max"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(changes, message):
    with pytest.raises(RulesError, match=message):
        Rules(**changes)


def test_rules_fields_must_be_int_not_bool_or_float():
    with pytest.raises(RulesError, match="int"):
        Rules(points_to_win=True)
    with pytest.raises(RulesError, match="int"):
        Rules(field_w=640.0 * 256)  # type: ignore[arg-type]


def test_decode_rejects_wrong_size():
    with pytest.raises(RulesError, match="bytes"):
        Rules.decode(b"\x00" * 7)


def test_rules_are_frozen():
    with pytest.raises(AttributeError):
        Rules().points_to_win = 3  # type: ignore[misc]
