"""A logging filter that passes the first few records of each message template."""

from __future__ import annotations

import logging
from collections import Counter


class FirstFew(logging.Filter):
    """Pass the first ``limit`` records per (logger, template); count the rest."""

    def __init__(self, limit: int = 20) -> None:
        super().__init__()
        self.limit = limit
        self.seen: Counter[tuple[str, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        self.seen[key] += 1
        return self.seen[key] <= self.limit
