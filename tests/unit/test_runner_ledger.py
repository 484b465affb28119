"""The state ledger saves only what every target has echoed."""

from __future__ import annotations

from typing import Any

from dpone_runner.state_commit import StateLedger


def ledger(targets: int) -> tuple[StateLedger, list[dict[str, Any]]]:
    saved: list[dict[str, Any]] = []
    return StateLedger(targets, saved.append), saved


def test_single_target_each_echo_is_saved():
    led, saved = ledger(1)
    for n in (1, 2, 3):
        led.offer({"n": n})
    led.echo(0, {"n": 2})
    led.echo(0, {"n": 3})
    assert saved == [{"n": 2}, {"n": 3}]


def test_two_targets_save_the_latest_state_both_echoed():
    led, saved = ledger(2)
    for n in (1, 2, 3, 4):
        led.offer({"n": n})
    led.echo(0, {"n": 3})  # fast target
    assert saved == []
    led.echo(1, {"n": 1})
    assert saved == [{"n": 1}]
    led.echo(1, {"n": 4})  # slow target overtakes: the floor is now target 0's state 3
    assert saved == [{"n": 1}, {"n": 3}]
    led.echo(0, {"n": 4})
    assert saved[-1] == {"n": 4}


def test_a_dead_target_holds_the_saved_state_back():
    led, saved = ledger(2)
    for n in range(1, 6):
        led.offer({"n": n})
    led.echo(1, {"n": 2})  # then target 1 dies
    led.echo(0, {"n": 5})
    assert saved == [{"n": 2}]


def test_repeated_equal_states_match_in_order():
    led, saved = ledger(2)
    for value in ({"n": 1}, {"n": 1}, {"n": 2}):
        led.offer(value)
    led.echo(0, {"n": 1})
    led.echo(1, {"n": 1})
    led.echo(0, {"n": 1})
    assert saved == [{"n": 1}]
    led.echo(0, {"n": 2})
    led.echo(1, {"n": 2})
    assert saved[-1] == {"n": 2}


def test_unknown_echo_is_saved_only_with_a_single_target():
    led, saved = ledger(1)
    led.echo(0, {"rewritten": True})
    assert saved == [{"rewritten": True}]
    led2, saved2 = ledger(2)
    led2.echo(0, {"rewritten": True})
    assert saved2 == []
