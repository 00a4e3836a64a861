"""Redis servers a test starts beside the embedded stack's (the same redis-server binary): a
primary, its replica, a Sentinel, and an endpoint that moves as a DNS name does
(tests/integration/test_redis_failover.py, test_redis_sentinel.py)."""

from __future__ import annotations

import asyncio
import socket

import redis.asyncio as aioredis

from streams import samples


class Endpoint:
    """A TCP endpoint that forwards each new connection to the current ``target`` port; connections
    already made keep their server (a DNS name moved to another host)."""

    def __init__(self, target: int):
        self.target = target
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.links: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.links += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.links:
            w.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def redis_server(tmp_path, name: str, *args: str):
    from ops.stack import find_redis_server

    port = free_port()
    d = tmp_path / name
    d.mkdir()
    proc = await asyncio.create_subprocess_exec(
        find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(d), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    for _ in range(100):
        assert proc.returncode is None, f"redis-server {name} did not start"
        try:
            await client.ping()
            return proc, client, port
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.05)
    raise AssertionError(f"redis-server {name} did not answer")


async def doc_nos(client, settings) -> set[str]:
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    [state] = await read_states(client, await resolve_keys(client, settings.namespace), [samples.COMPANY_USCC])
    return {r["doc_no"] for r in (state or {}).get("records", {}).values()}
