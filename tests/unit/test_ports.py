"""ops/processes.py ``free_port_from``: the embedded stack's servers listen below the kernel's range of
ports for outgoing connections, so a server started again on its recorded port finds it free (a port
from that range may have become the local end of someone's connection meanwhile)."""

from __future__ import annotations

import socket

from ops.processes import LISTEN_PORTS_FROM, ephemeral_ports, free_port_from


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_listened_on():
    low, high = ephemeral_ports()
    assert 1024 <= low <= high <= 65535
    taken: set[int] = set()
    ports = [free_port_from(taken) for _ in range(20)]
    assert len(set(ports)) == 20 and set(ports) == taken
    for port in ports:
        assert LISTEN_PORTS_FROM <= port < low
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()


def test_a_port_something_listens_on_is_not_given():
    taken: set[int] = set()
    port = free_port_from(taken)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        again = {free_port_from(set()) for _ in range(50)}
    assert port not in again
