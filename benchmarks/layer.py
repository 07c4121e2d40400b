"""The layer alone: CPU per request/reply round trip through RedisChannelLayer.

    python -m benchmarks.layer                      # 100 B, 20,000 round trips, 64 in flight
    python -m benchmarks.layer --size 1000000 --messages 400 --inflight 8

One process plays caller and worker on two layers (a request channel popped in batches,
replies to a drained '!' channel handed to a listener), over a private redis-server.
It reports this process's CPU time and redis-server's per round trip: steadier than
wall-clock rates on a shared machine. Bounded: at most --messages round trips and
--limit seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servicebus.layers import RedisChannelLayer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str, args: argparse.Namespace, redis_pid: int) -> dict[str, float]:
    """Round trips through two layers; CPU of this process and redis-server per round trip."""
    caller = RedisChannelLayer(hosts=[url], capacity=10_000)
    worker = RedisChannelLayer(hosts=[url], capacity=10_000)
    reply = await caller.new_channel()
    body = os.urandom(args.size)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[None]] = {}

    def replies(messages: list[dict[str, Any]]) -> None:
        for message in messages:
            future = waiting.pop(message["i"], None)
            if future is not None and not future.done():
                future.set_result(None)

    async def serve() -> None:
        while True:
            for message in await worker.receive_many("bench.layer", 16, timeout=1):
                worker.send_nowait(message["reply"], {"i": message["i"], "body": message["body"]})

    deadline = time.monotonic() + args.limit

    async def client(first: int, step: int, count: int) -> int:
        done = 0
        for i in range(first, count, step):
            if time.monotonic() > deadline:
                break
            waiting[i] = loop.create_future()
            await caller.send_nowait("bench.layer", {"i": i, "reply": reply, "body": body})
            await asyncio.wait_for(waiting[i], 30)
            done += 1
        return done

    listener = asyncio.ensure_future(caller.listen_local(reply, replies))
    server = asyncio.ensure_future(serve())
    try:
        # Warm-up: connections, drainer, script cache.
        await asyncio.gather(*(client(k, args.inflight, 200) for k in range(args.inflight)))
        wall, cpu, rcpu = time.perf_counter(), time.process_time(), cpu_seconds(redis_pid)
        done = sum(
            await asyncio.gather(
                *(client(k, args.inflight, args.messages) for k in range(args.inflight))
            )
        )
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        rcpu = cpu_seconds(redis_pid) - rcpu
    finally:
        server.cancel()
        listener.cancel()
        await caller.close()
        await worker.close()
    return {
        "round_trips": done,
        "rate": done / wall,
        "python_us": cpu / done * 1e6,
        "redis_us": rcpu / done * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run once, print one line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100, help="body bytes")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds at most")
    args = parser.parse_args(argv)
    with RedisServer() as server:
        assert server.proc is not None
        result = asyncio.run(run(server.url, args, server.proc.pid))
    print(
        f"{result['round_trips']:,} round trips of {args.size:,} B at {args.inflight} in flight: "
        f"{result['rate']:,.0f}/s; CPU per round trip: this process "
        f"{result['python_us']:,.1f} us (caller + worker sides), "
        f"redis-server {result['redis_us']:,.1f} us"
    )


if __name__ == "__main__":
    main()
