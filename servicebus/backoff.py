"""One backoff policy for every retry loop (client, worker, layer receive, drainer, relay).

Exponential with full jitter (a random delay up to the current ceiling): processes that
lost Redis at the same moment do not all come back in the same millisecond.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for failures in a row: ``next()`` grows to ``maximum``, ``reset()`` on success."""

    __slots__ = ("_ceiling", "factor", "initial", "jitter", "maximum")

    def __init__(
        self,
        initial: float = 0.05,
        maximum: float = 2.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.5,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter is a fraction from 0 to 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._ceiling = initial

    def next(self) -> float:
        """The delay before the next attempt (seconds); each call raises the ceiling."""
        ceiling = self._ceiling
        self._ceiling = min(ceiling * self.factor, self.maximum)
        # Keep (1 - jitter) of the ceiling, randomise the rest.
        return ceiling * (1 - self.jitter) + random.random() * ceiling * self.jitter

    def reset(self) -> None:
        """Start over from ``initial`` (call after a success)."""
        self._ceiling = self.initial
