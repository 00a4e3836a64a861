"""Minimal wire-protocol probes of the embedded services, with no client library: does the broker
on a port answer Kafka's ApiVersions and Metadata (and which brokers does it see), does the Redis on
a port answer PING. Used while the embedded stack and cluster start (ops/stack.py,
ops/kafka_cluster.py)."""

from __future__ import annotations

import socket
import struct


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return bytes(buf)


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    """One Kafka request (header v1) and its response body (after the correlation id)."""
    client = b"creditstream-probe"
    msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise OSError("kafka: correlation id mismatch")
    return data[4:]


def probe_broker(port: int, timeout: float = 1.0) -> bool:
    """The broker on ``port`` answers ApiVersions v0 (no error) and Metadata v0 listing itself."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            resp = _request(sock, 18, 0, 1, b"")  # ApiVersions
            if struct.unpack(">h", resp[:2])[0] != 0:
                return False
            resp = _request(sock, 3, 0, 2, struct.pack(">i", 0))  # Metadata, all topics
            n_brokers = struct.unpack(">i", resp[:4])[0]
            pos = 4
            for _ in range(n_brokers):
                pos += 4  # node id
                hlen = struct.unpack(">h", resp[pos:pos + 2])[0]
                pos += 2 + hlen
                bport = struct.unpack(">i", resp[pos:pos + 4])[0]
                pos += 4
                if bport == port:
                    return True
            return False
    except (OSError, struct.error):
        return False


# Like probe_broker (which Kafka 4.4 answers too), but it returns the alive brokers a node reports,
# so that a cluster is ready only once every node sees every node.
def probe_kafka(port: int, timeout: float = 1.0) -> list[int] | None:
    """The ids of the alive brokers that the broker on ``port`` reports (ApiVersions v0 without
    error, then Metadata v4 for no topics), or None if it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            resp = _request(sock, 18, 0, 1, b"")  # ApiVersions v0
            if struct.unpack(">h", resp[:2])[0] != 0:
                return None
            # Metadata v4: topics = [] (none), allow_auto_topic_creation = false
            resp = _request(sock, 3, 4, 2, struct.pack(">ib", 0, 0))
            pos = 4  # throttle_time_ms
            n = struct.unpack(">i", resp[pos:pos + 4])[0]
            pos += 4
            ids = []
            for _ in range(n):
                ids.append(struct.unpack(">i", resp[pos:pos + 4])[0])
                pos += 4
                hlen = struct.unpack(">h", resp[pos:pos + 2])[0]
                pos += 2 + hlen + 4  # host, port
                rlen = struct.unpack(">h", resp[pos:pos + 2])[0]
                pos += 2 + max(rlen, 0)  # rack (nullable)
            return sorted(ids)
    except (OSError, struct.error):
        return None


def _resp_command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _ask_redis(port: int, password: str | None, command: str, timeout: float) -> bytes | None:
    """One command's reply line from the local redis-server on ``port`` (after AUTH when ``password``),
    or None when it does not answer or refuses the password."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            f = sock.makefile("rb")
            if password:
                sock.sendall(_resp_command("AUTH", password))
                if not f.readline().startswith(b"+OK"):
                    return None
            sock.sendall(_resp_command(command))
            return f.readline()
    except OSError:
        return None


def redis_keys(port: int, password: str | None = None, timeout: float = 2.0) -> int | None:
    """How many keys the local redis-server on ``port`` holds (``DBSIZE`` of database 0), or None when
    it does not answer."""
    line = _ask_redis(port, password, "DBSIZE", timeout)
    try:
        return int(line[1:]) if line is not None and line.startswith(b":") else None
    except ValueError:
        return None


def probe_redis(port: int, password: str | None = None, timeout: float = 1.0) -> bool:
    line = _ask_redis(port, password, "PING", timeout)
    return line is not None and line.startswith(b"+PONG")
