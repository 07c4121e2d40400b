"""The same services on PostgreSQL (DATABASE_URL): allocation under concurrency, and a
declined card's compensation. Skipped when no PostgreSQL answers on 127.0.0.1:5432."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import CARD_DECLINED, SERVICES, Stack, start_stack
from tests.support import postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PG = postgres.URL


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The services, each on its own fresh PostgreSQL database."""
    if not postgres.postgres_answers():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not answering")
    import psycopg

    names = {service: f"sb_e2e_{service}_{uuid.uuid4().hex[:8]}" for service in SERVICES}
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        running = start_stack(
            redis_url,
            tmp_path_factory.mktemp("pg"),
            call_timeout=3.0,
            database_urls={service: f"{PG}/{name}" for service, name in names.items()},
        )
        yield running
        running.stop()
        assert not running.crashes()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_fifty_concurrent_orders_for_the_last_ten_units_on_postgres(stack: Stack) -> None:
    assert stack.stock("LTD-01") == 10
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: stack.order([{"sku": "LTD-01", "qty": 1}]), range(50)))
    statuses = [resp.status for resp in responses]
    assert (statuses.count(201), statuses.count(409)) == (10, 40), statuses
    assert stack.stock("LTD-01") == 0


def test_declined_card_releases_the_allocation_on_postgres(stack: Stack) -> None:
    before = stack.stock("MUG-01")
    resp = stack.order([{"sku": "MUG-01", "qty": 2}], card=CARD_DECLINED)
    assert resp.status == 402
    assert stack.stock("MUG-01") == before
