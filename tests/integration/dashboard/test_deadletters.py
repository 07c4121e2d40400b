"""Dead letters on a real Redis: review, confirm, then retry or purge (CSRF, staff only)."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import redis
from django.test import Client

from servicebus.outbox import transport
from servicebus.outbox.constants import deadletter_stream, event_stream

pytestmark = [pytest.mark.redis, pytest.mark.django_db]
TOPIC = "inventory.product"
BASE = f"/bus/events/deadletters/{TOPIC}"


def kill(client: redis.Redis, n: int, with_fields: bool = True) -> list[str]:
    """Dead-letter ``n`` events of TOPIC the way the consumer does; their dead ids."""
    ids = []
    for i in range(n):
        fields = {"v": "1", "payload": f'{{"i": {i}}}'} if with_fields else {}
        stream_id = client.xadd(event_stream(TOPIC), {"v": "1", "payload": "{}"})
        ids.append(transport.dead_letter(client, TOPIC, "orders", stream_id, fields, f"boom {i}"))
    return ids


@pytest.fixture
def streams(outbox_redis: str) -> Any:
    client = transport.connect()
    yield client
    client.close()


def token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def confirm_page(client: Client, action: str, ids: list[str]) -> str:
    resp = client.get(f"{BASE}/confirm/{action}", {"id": ids})
    assert resp.status_code == 200, resp.content[:300]
    return resp.content.decode()


def test_list_confirm_then_retry(staff_client: Client, streams: redis.Redis) -> None:
    ids = kill(streams, 3)
    listing = staff_client.get(BASE).content.decode()
    assert all(f'data-id="{i}"' in listing for i in ids)
    assert "boom 2" in listing
    before = streams.xlen(event_stream(TOPIC))
    page = confirm_page(staff_client, "retry", ids[:2])
    assert "Retry 2 dead letters" in page
    assert streams.xlen(deadletter_stream(TOPIC)) == 3  # nothing happens on GET
    resp = staff_client.post(
        f"{BASE}/retry", {"id": ids[:2], "confirm": "yes", "csrfmiddlewaretoken": token(page)}
    )
    assert resp.status_code == 302
    assert resp["Location"] == f"{BASE}?done=retry&n=2&skipped=0"
    assert [i for i, _ in transport.dead_letters(streams, TOPIC)] == [ids[2]]
    added = streams.xrange(event_stream(TOPIC))[before:]
    assert [fields["payload"] for _, fields in added] == ['{"i": 0}', '{"i": 1}']
    assert "Retry: 2 dead letters" in staff_client.get(resp["Location"]).content.decode()


def test_purge_after_confirmation(staff_client: Client, streams: redis.Redis) -> None:
    ids = kill(streams, 2)
    page = confirm_page(staff_client, "purge", ids)
    assert "This deletes them for good" in page
    resp = staff_client.post(
        f"{BASE}/purge", {"id": ids, "confirm": "yes", "csrfmiddlewaretoken": token(page)}
    )
    assert resp.status_code == 302
    assert streams.xlen(deadletter_stream(TOPIC)) == 0


def test_post_without_csrf_token_is_refused(staff_client: Client, streams: redis.Redis) -> None:
    ids = kill(streams, 1)
    confirm_page(staff_client, "purge", ids)  # the cookie is set, but no token is sent
    resp = staff_client.post(f"{BASE}/purge", {"id": ids, "confirm": "yes"})
    assert resp.status_code == 403
    assert streams.xlen(deadletter_stream(TOPIC)) == 1


def test_post_without_confirmation_is_refused(staff_client: Client, streams: redis.Redis) -> None:
    ids = kill(streams, 1)
    page = confirm_page(staff_client, "purge", ids)
    resp = staff_client.post(f"{BASE}/purge", {"id": ids, "csrfmiddlewaretoken": token(page)})
    assert resp.status_code == 400
    assert streams.xlen(deadletter_stream(TOPIC)) == 1


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_only_staff_may_act(who: str, plain_client: Client, streams: redis.Redis) -> None:
    ids = kill(streams, 1)
    client = Client() if who == "anonymous" else plain_client
    assert client.get(BASE).status_code in (302, 403)
    assert client.get(f"{BASE}/confirm/purge", {"id": ids}).status_code in (302, 403)
    client = Client() if who == "anonymous" else plain_client
    client.handler.enforce_csrf_checks = False  # even without CSRF in the way
    assert client.post(f"{BASE}/purge", {"id": ids, "confirm": "yes"}).status_code == 403
    assert streams.xlen(deadletter_stream(TOPIC)) == 1


def test_bad_requests(staff_client: Client, streams: redis.Redis) -> None:
    assert staff_client.get(f"{BASE}/confirm/explode", {"id": "1-0"}).status_code == 400
    assert staff_client.get(f"{BASE}/confirm/purge", {"id": "*"}).status_code == 400
    assert staff_client.get(f"{BASE}/confirm/purge").status_code == 400
    assert staff_client.get("/bus/events/deadletters/a b").status_code == 404


def test_dead_letter_without_fields_is_not_retryable(
    staff_client: Client, streams: redis.Redis
) -> None:
    [dead] = kill(streams, 1, with_fields=False)
    listing = staff_client.get(BASE).content.decode()
    assert f"confirm/retry?id={dead}" not in listing
    page = confirm_page(staff_client, "retry", [dead])
    resp = staff_client.post(
        f"{BASE}/retry", {"id": [dead], "confirm": "yes", "csrfmiddlewaretoken": token(page)}
    )
    assert resp["Location"].endswith("n=0&skipped=1")
    assert streams.xlen(deadletter_stream(TOPIC)) == 1


def test_racing_retries_re_add_once(streams: redis.Redis) -> None:
    [dead] = kill(streams, 1)
    before = streams.xlen(event_stream(TOPIC))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def retry() -> None:
        client = transport.connect()
        barrier.wait(5)
        results.append(transport.retry_dead_letter(client, TOPIC, dead, 1000))
        client.close()

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * 7 + [True]
    assert streams.xlen(event_stream(TOPIC)) == before + 1


def test_redis_down_says_so(staff_client: Client, settings: Any) -> None:
    from tests.support.redis_server import free_port

    settings.SERVICEBUS_OUTBOX = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    resp = staff_client.get(BASE)
    assert resp.status_code == 503
    assert "Redis is unavailable" in resp.content.decode()
