"""A hostile peer with write access to Redis but no signing key (run as its own process).

    python -m tests.integration.rpc.attacker inject REDIS_URL N   # N unsigned/forged requests
    python -m tests.integration.rpc.attacker forge REDIS_URL      # pop a request, answer it,
                                                                  # put it back twice
    python -m tests.integration.rpc.attacker replay REDIS_URL     # copy a queued request twice

Prints one result line; talks to Redis on loopback only.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import msgpack
import redis

KEY = b"asgimisc.request"
PREFIX = 12  # channels_redis: 12 random bytes before the msgpack


def _layer(url: str):  # type: ignore[no-untyped-def]
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=[url])


def _request(i: int, reply_to: str) -> dict[str, object]:
    return {
        "type": "servicebus.request",
        "v": 1,
        "id": f"attack-{i}",
        "cid": f"attack-{i}",
        "method": "record",
        "body": msgpack.packb(f"attack-{i}"),
        "reply_to": reply_to,
        "deadline": time.time() + 30,
        "headers": {},
        "flags": [],
        "caller": "orders",
    }


async def inject(url: str, count: int) -> None:
    layer = _layer(url)
    reply_to = await layer.new_channel("servicebus.reply")
    for i in range(count):
        message = _request(i, reply_to)
        if i % 2:
            message |= {"kid": "deadbeef", "sig": os.urandom(32)}  # a made-up signature
        await layer.send("misc.request", message)
    replies = 0
    try:
        while True:
            await asyncio.wait_for(layer.receive(reply_to), 2.0)
            replies += 1
    except TimeoutError:
        pass
    await layer.close_pools()
    print(f"replies={replies}", flush=True)


def _take(client: redis.Redis, pop: bool) -> tuple[bytes, dict[str, object]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pop:
            got = client.bzpopmin(KEY, 1)
            if got:
                member = got[1]
                return member, msgpack.unpackb(member[PREFIX:])
        else:
            members = client.zrange(KEY, 0, 0)
            if members:
                return members[0], msgpack.unpackb(members[0][PREFIX:])
            time.sleep(0.01)
    raise SystemExit("no request to take")


def _put_back(client: redis.Redis, member: bytes, copies: int) -> None:
    for _ in range(copies):
        # Fresh random prefixes: distinct sorted-set members, the same request.
        client.zadd(KEY, {os.urandom(PREFIX) + member[PREFIX:]: time.time()})


async def forge(url: str) -> None:
    client = redis.Redis.from_url(url)
    member, request = _take(client, pop=True)
    layer = _layer(url)
    reply = {
        "type": "servicebus.reply",
        "v": 1,
        "id": request["id"],
        "ok": True,
        "body": msgpack.packb("forged"),
    }
    await layer.send(str(request["reply_to"]), reply)
    await layer.send(str(request["reply_to"]), {**reply, "kid": "deadbeef", "sig": os.urandom(32)})
    await layer.close_pools()
    _put_back(client, member, 2)
    client.close()
    print(f"forged {request['id']}", flush=True)


def replay(url: str) -> None:
    client = redis.Redis.from_url(url)
    member, request = _take(client, pop=False)
    _put_back(client, member, 2)
    client.close()
    print(f"replayed {request['id']}", flush=True)


if __name__ == "__main__":
    command, url = sys.argv[1], sys.argv[2]
    if command == "inject":
        asyncio.run(inject(url, int(sys.argv[3])))
    elif command == "forge":
        asyncio.run(forge(url))
    else:
        replay(url)
