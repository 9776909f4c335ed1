"""ReconnectPolicy: exponential back-off with jitter, a cap and an attempt limit."""

from __future__ import annotations

import pytest

import gear


def test_delays_double_up_to_the_cap() -> None:
    policy = gear.ReconnectPolicy(initial_delay=0.5, max_delay=5, multiplier=2, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert policy.delay(10_000) == 5  # no overflow however long it fails


def test_jitter_spreads_each_delay_within_its_bounds() -> None:
    policy = gear.ReconnectPolicy(initial_delay=1, max_delay=100, jitter=0.25)
    assert policy.delay(3, rand=lambda: 0.5) == 4
    assert policy.delay(3, rand=lambda: 0.0) == 3
    assert policy.delay(3, rand=lambda: 0.999999) == pytest.approx(5, abs=1e-4)
    spread = {policy.delay(2) for _ in range(50)}
    assert len(spread) > 1 and all(1.5 <= d <= 2.5 for d in spread)
    capped = gear.ReconnectPolicy(initial_delay=8, max_delay=8, jitter=0.5)
    assert capped.delay(1, rand=lambda: 0.99) == 8


def test_max_attempts() -> None:
    assert not gear.ReconnectPolicy().gives_up(10**6)
    policy = gear.ReconnectPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3)] == [False, False, True]


def test_fixed_is_gear_016_style() -> None:
    policy = gear.ReconnectPolicy.fixed(2.0)
    assert {policy.delay(n) for n in range(1, 20)} == {2.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_delay": -1},
        {"max_delay": -1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"max_attempts": 0},
    ],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(gear.ConfigurationError):
        gear.ReconnectPolicy(**kwargs)  # type: ignore[arg-type]
