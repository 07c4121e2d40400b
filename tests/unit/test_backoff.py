"""The shared backoff policy: grows, caps, jitters within bounds, resets."""

from __future__ import annotations

import pytest

from servicebus.backoff import Backoff


def test_grows_to_the_maximum_and_stays_within_jitter_bounds() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.5)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for ceiling in ceilings:
        delay = backoff.next()
        assert ceiling * 0.5 <= delay <= ceiling


def test_reset_starts_over() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.0)
    assert [backoff.next() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.4])
    backoff.reset()
    assert backoff.next() == pytest.approx(0.1)


def test_jitter_spreads_delays() -> None:
    delays = {Backoff(1.0, 1.0, jitter=1.0).next() for _ in range(50)}
    assert len(delays) > 40
    assert all(0 <= d <= 1.0 for d in delays)


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
    with pytest.raises(ValueError):
        Backoff(0.1, 1, jitter=2)
