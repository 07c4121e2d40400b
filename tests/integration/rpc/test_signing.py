"""Signed envelopes between real processes: an attacker with Redis access but no key gets
no request run and no reply believed; keys rotate without downtime; a replay runs once."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import servicebus
from servicebus.metrics import metrics
from tests.integration.rpc.conftest import LAYER, layer_settings
from tests.support.processes import ROOT, ManagedProcess, runworker
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

NEW = "new-signing-key-0123456789"
OLD = "old-signing-key-0123456789"


def _worker(redis_url: str, *keys: str) -> ManagedProcess:
    env = {"SERVICEBUS_SIGNING_KEYS": ",".join(keys)}
    return runworker(["misc.request"], redis_url=redis_url, layer=LAYER, extra_env=env)


def _attack(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.rpc.attacker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def _keys(settings, *keys: str) -> None:
    settings.SERVICEBUS = {"SERVICE_NAME": "tests", "RECEIVE_POLL": 0.2, "SIGNING_KEYS": list(keys)}


async def test_attacker_requests_are_never_run(settings, bus, redis_flushed) -> None:
    _keys(settings, NEW, OLD)
    proc = _worker(redis_flushed, NEW, OLD)
    try:
        assert await servicebus.acall("misc.request", "record", "signed-1", timeout=5) == "signed-1"
        result = await asyncio.to_thread(_attack, "inject", redis_flushed, "6")
        assert result == "replies=0"  # not even an error reply
        await asyncio.to_thread(proc.wait_for, "dropped a request (bad_signature)", 10)
        assert await servicebus.acall("misc.request", "record", "signed-2", timeout=5) == "signed-2"
    finally:
        proc.stop()
    assert proc.output.count("dropped a request (unsigned)") == 3
    assert proc.output.count("dropped a request (bad_signature)") == 3
    recorded = [line for line in proc.lines if "recorded" in line]
    assert len(recorded) == 2 and "recorded attack" not in proc.output


async def test_forged_replies_are_not_believed_and_a_replay_runs_once(
    settings, bus, redis_flushed
) -> None:
    _keys(settings, NEW, OLD)
    # No worker yet: the attacker pops the request first (a rogue worker), answers it with
    # forged replies and puts it back twice.
    call = asyncio.create_task(servicebus.acall("misc.request", "record", "genuine", timeout=20))
    forged = await asyncio.to_thread(_attack, "forge", redis_flushed)
    assert forged.startswith("forged ")
    proc = await asyncio.to_thread(_worker, redis_flushed, NEW, OLD)
    try:
        assert await call == "genuine"
        await asyncio.to_thread(proc.wait_for, "dropped a replayed request", 10)
    finally:
        proc.stop()
    assert metrics.get("replies_unsigned") == 1
    assert metrics.get("replies_bad_signature") == 1
    assert len([line for line in proc.lines if "recorded genuine" in line]) == 1
    assert proc.output.count("dropped a replayed request") == 1


async def test_a_request_captured_with_zrange_runs_once(settings, bus, redis_flushed) -> None:
    _keys(settings, NEW)
    call = asyncio.create_task(servicebus.acall("misc.request", "record", "captured", timeout=20))
    assert (await asyncio.to_thread(_attack, "replay", redis_flushed)).startswith("replayed ")
    proc = await asyncio.to_thread(_worker, redis_flushed, NEW)
    try:
        assert await call == "captured"
        await asyncio.to_thread(proc.wait_for, "dropped a replayed request", 10)
        await asyncio.sleep(0.5)  # time for a second run, if there were one, to be logged
    finally:
        proc.stop()
    assert len([line for line in proc.lines if "recorded captured" in line]) == 1
    assert proc.output.count("dropped a replayed request") == 2


async def test_key_rotation_between_processes(settings, bus, redis_flushed) -> None:
    # Step 2 of a rotation: workers accept [new, old]; callers still on [old], then on [new].
    proc = _worker(redis_flushed, NEW, OLD)
    try:
        _keys(settings, OLD)
        assert await servicebus.acall("misc.request", "echo", "old", timeout=5) == "old"
        _keys(settings, NEW, OLD)
        assert await servicebus.acall("misc.request", "echo", "new", timeout=5) == "new"
        _keys(settings, NEW)
        assert await servicebus.acall("misc.request", "echo", "only-new", timeout=5) == "only-new"
    finally:
        proc.stop()
    # A worker that knows only the old key accepts nothing signed with the new one.
    proc = _worker(redis_flushed, OLD)
    try:
        with pytest.raises(servicebus.CallTimeout):
            await servicebus.acall("misc.request", "echo", "x", timeout=1)
        await asyncio.to_thread(proc.wait_for, "dropped a request (bad_signature)", 10)
    finally:
        proc.stop()


def _acl_lines(service: str) -> list[list[str]]:
    """The ``acl`` block of docs/security.md, for ``service`` instead of inventory."""
    text = (ROOT / "docs" / "security.md").read_text()
    block = text.split("```acl\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.replace("inventory", service).splitlines():
        args: list[str] = []
        for token in line.split():
            if args and args[-1].startswith("(") and not args[-1].endswith(")"):
                args[-1] += " " + token  # a Redis 7 selector is one argument
            else:
                args.append(token)
        commands.append(args)
    return commands


@pytest.mark.skipif(LAYER != "servicebus", reason="the ACL lines are for servicebus's layer")
async def test_acl_lines_from_security_md(settings, bus) -> None:
    import redis

    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        for args in _acl_lines("misc"):
            assert args[:2] == ["ACL", "SETUSER"]
            admin.execute_command(*args)
        admin.execute_command("CONFIG", "SET", "requirepass", "admin-secret")
        admin.close()
        port = server.port
        worker_url = f"redis://misc:misc-secret@127.0.0.1:{port}/0"
        caller_url = f"redis://orders:orders-secret@127.0.0.1:{port}/0"
        proc = _worker(worker_url, NEW)
        try:
            settings.CHANNEL_LAYERS = layer_settings(caller_url)
            _keys(settings, NEW)
            assert await servicebus.acall("misc.request", "echo", "acl", timeout=5) == "acl"
            # Nested calls from the worker to its own service work too.
            assert 0 < await servicebus.acall("misc.request", "nested_remaining", timeout=5)
        finally:
            assert proc.stop() == 0
        # The caller's user cannot pop the service's requests.
        client = redis.Redis.from_url(caller_url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.zmpop(1, ["asgimisc.request"], min=True)
        client.close()
