"""An embedded Apache Kafka cluster (KRaft; every node a combined broker + controller) on free
loopback ports, started and stopped by the project itself: for tests, and for
``creditstream stack up --broker kafka``.

The broker is the real thing: ``kafka.Kafka`` from Maven Central, at the version pinned in
``deploy/kafka/pom.xml`` (property ``kafka.version``, read here as ``KAFKA_VERSION``). Its jars
are resolved once with Maven into ``cache_dir()/lib`` (``$CREDITSTREAM_CACHE`` or
``~/.cache/creditstream``, then ``kafka-<version>``), outside the work tree; later starts need
neither Maven nor the network.

``KafkaCluster(run_dir).up(nodes=1 or 3)`` writes one ``server.properties`` and one log4j2
file per node under ``<run_dir>/kafka/node-<id>/``, formats the log dirs with
``kafka.tools.StorageTool`` (one cluster id; a static ``controller.quorum.voters`` quorum, so no
``--standalone`` / ``--initial-controllers``), starts one detached JVM per node (they outlive
the Python process that started them) and returns once every node answers ApiVersions and a
Metadata request that lists every node as an alive broker. Its state is
``<run_dir>/kafka/cluster.json``; the layout (cluster id, node ids, ports) is kept in
``layout.json`` so that ``down()`` then ``up()`` on the same run dir starts the same cluster on
the same ports with its data (topics, offsets) intact.

Every PID read back from cluster.json is checked against ``/proc/PID/cmdline`` and the process
start time before it is signalled, so a stale file never makes us kill a stranger.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ops.kafka_config import SaslSsl, server_properties, write_node_log4j2, write_properties, write_tool_log4j2
from ops.kafka_jars import KAFKA_VERSION, POM, KafkaClusterError, _java_major, _tail, cache_dir, ensure_jars, find_java
from ops.processes import CHILDREN as _CHILDREN
from ops.processes import file_tail, free_port_from, port_is_free, terminate_all
from ops.processes import is_alive as _is_alive
from ops.processes import is_ours as _is_ours
from ops.processes import is_paused as _is_paused
from ops.processes import proc_stat as _proc_stat
from ops.processes import rss_bytes as _rss_bytes
from ops.wire import probe_kafka

__all__ = [
    "KAFKA_VERSION",
    "KafkaCluster",
    "KafkaClusterError",
    "POM",
    "SaslSsl",
    "cache_dir",
    "ensure_jars",
    "find_java",
    "kafka_cluster",
    "probe_kafka",
]

JVM_HEAP = ("-Xms256m", "-Xmx512m")
"""Per node: three nodes and the test processes fit a 2-core, 24 GiB machine."""

_LOG_TAIL_LINES = 40


# --------------------------------------------------------------------------------------------


def _new_cluster_id() -> str:
    while True:  # Kafka's Uuid.randomUuid() also refuses ids that start with '-'
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _java_opts() -> list[str]:
    return [*JVM_HEAP, "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]


def _operator_java_opts() -> list[str]:
    """``$KAFKA_OPTS``, split on white space as Apache Kafka's own start scripts read it: placed after
    every option of the node's own, so they win (e.g. a flight recording of a run,
    ``KAFKA_OPTS=-XX:StartFlightRecording=filename=/tmp/node.jfr``)."""
    return os.environ.get("KAFKA_OPTS", "").split()


class KafkaCluster:
    """One embedded Kafka cluster in ``<run_dir>/kafka``. Node ids are 0..nodes-1, and ``i`` in
    ``pause_node(i)`` and friends is a node id."""

    def __init__(self, run_dir: str | os.PathLike[str] = ".run"):
        self.run_dir = Path(run_dir).resolve()
        self.base = self.run_dir / "kafka"

    # -- paths -----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.base / "cluster.json"

    @property
    def layout_file(self) -> Path:
        return self.base / "layout.json"

    def node_dir(self, node_id: int) -> Path:
        return self.base / f"node-{node_id}"

    def node_log(self, node_id: int) -> Path:
        """The broker's own log (log4j2), rolled over at 20 MB."""
        return self.node_dir(node_id) / "server.log"

    def node_gc_log(self, node_id: int) -> Path:
        """The JVM's collector pauses (two files of 10 MB at most): read it beside a latency figure
        measured on this node."""
        return self.node_dir(node_id) / "gc.log"

    def node_console(self, node_id: int) -> Path:
        """stdout/stderr of the JVM: what is printed before logging starts, and crashes."""
        return self.node_dir(node_id) / "console.log"

    # -- state files ---------------------------------------------------------------------------
    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    def _read(self) -> dict[str, Any] | None:
        return self._read_json(self.state_file)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- configuration --------------------------------------------------------------------------
    def _new_layout(self, nodes: int, sasl_ssl: bool = False) -> dict[str, Any]:
        taken: set[int] = set()
        layout: dict[str, Any] = {
            "version": KAFKA_VERSION,
            "cluster_id": _new_cluster_id(),
            "nodes": [{"id": i, "port": free_port_from(taken), "controller_port": free_port_from(taken)}
                      for i in range(nodes)],
        }
        if sasl_ssl:
            for node in layout["nodes"]:
                node["sasl_port"] = free_port_from(taken)
        return layout

    def _node_cmd(self, java: str, lib: Path, node_id: int) -> list[str]:
        d = self.node_dir(node_id)
        return [java, *_java_opts(),
                f"-Xlog:gc:file={self.node_gc_log(node_id)}:time,uptime:filecount=2,filesize=10m",
                *_operator_java_opts(),
                "-cp", f"{lib}/*",
                f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={d}",
                "kafka.Kafka", str(d / "server.properties")]

    def _prepare(self, layout: dict[str, Any], extra: dict[str, Any], sasl_ssl: SaslSsl | None = None) -> None:
        for node in layout["nodes"]:
            d = self.node_dir(node["id"])
            (d / "data").mkdir(parents=True, exist_ok=True)
            write_properties(d / "server.properties", server_properties(layout, node, d / "data", extra, sasl_ssl))
            write_node_log4j2(d, self.node_log(node["id"]))

    def _formatted(self, node_id: int) -> str | None:
        """The cluster id a node's log dir is formatted with, None if it is not formatted."""
        try:
            text = (self.node_dir(node_id) / "data" / "meta.properties").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
        return None

    def _format(self, java: str, lib: Path, layout: dict[str, Any], deadline: float,
                sasl_ssl: SaslSsl | None = None) -> None:
        """``kafka-storage format`` every node's log dir with the layout's cluster id (already
        formatted dirs are left alone), all nodes at once; ``sasl_ssl``: with its SCRAM users."""
        tool_log4j = write_tool_log4j2(self.base)
        procs = []
        for node in layout["nodes"]:
            d = self.node_dir(node["id"])
            if self._formatted(node["id"]) == layout["cluster_id"]:
                continue  # a restart: skip a JVM start that would change nothing
            cmd = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                   "-cp", f"{lib}/*", f"-Dlog4j2.configurationFile={tool_log4j}",
                   "kafka.tools.StorageTool", "format", "--ignore-formatted",
                   "--cluster-id", layout["cluster_id"], "--config", str(d / "server.properties"),
                   *(sasl_ssl.scram_arguments() if sasl_ssl is not None else ())]
            procs.append((node["id"], cmd, subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                cwd=d, start_new_session=True)))
        failures = []
        for node_id, cmd, p in procs:
            try:
                out, _ = p.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                failures.append(f"node {node_id}: format timed out\n{_tail(out.decode(errors='replace'))}")
                continue
            if p.returncode != 0:
                shown = " ".join(a if not a.startswith("SCRAM-") else "SCRAM-...=[...]" for a in cmd)  # passwords
                failures.append(f"node {node_id}: {shown} (exit {p.returncode})\n"
                                f"{_tail(out.decode(errors='replace'))}")
        if failures:
            raise KafkaClusterError("kafka-storage format failed:\n" + "\n".join(failures))

    def _spawn(self, java: str, lib: Path, node: dict[str, Any]) -> dict[str, Any]:
        node_id = node["id"]
        cmd = self._node_cmd(java, lib, node_id)
        marker = f"=== creditstream kafka: {time.strftime('%Y-%m-%dT%H:%M:%S')} node {node_id}"
        for path in (self.node_console(node_id), self.node_log(node_id)):
            with open(path, "ab") as fh:
                fh.write(f"{marker}\n".encode())
        with open(self.node_console(node_id), "ab") as fh:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                cwd=self.node_dir(node_id), start_new_session=True, close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        stat = _proc_stat(proc.pid)
        return {**node, "pid": proc.pid, "cmd": cmd, "starttime": stat[1] if stat else None,
                "log": str(self.node_log(node_id)), "console": str(self.node_console(node_id)),
                "data_dir": str(self.node_dir(node_id) / "data")}

    def _diagnosis(self, entry: dict[str, Any]) -> str:
        node_id = entry["id"]
        return (f"--- {self.node_console(node_id)}:\n"
                f"{file_tail(self.node_console(node_id), 15, '=== creditstream kafka:')}\n"
                f"--- {self.node_log(node_id)}:\n"
                f"{file_tail(self.node_log(node_id), marker='=== creditstream kafka:')}")

    def _wait_ready(self, entries: list[dict[str, Any]], expect: set[int], deadline: float) -> None:
        """Until each entry's node answers and lists every id in ``expect`` as an alive broker."""
        pending = list(entries)
        while pending:
            for e in list(pending):
                if not _is_alive(e):
                    child = _CHILDREN.get(int(e["pid"]))
                    if child is not None:  # let it write its last words
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            child.wait(1.0)
                    raise KafkaClusterError(f"Kafka node {e['id']} (pid {e['pid']}) exited during "
                                            f"start-up\n{self._diagnosis(e)}")
                ids = probe_kafka(int(e["port"]), 1.0)
                if ids is not None and expect <= set(ids) and _is_alive(e):
                    pending.remove(e)
            if not pending:
                return
            if time.monotonic() > deadline:
                e = pending[0]
                seen = probe_kafka(int(e["port"]), 1.0)
                raise KafkaClusterError(
                    f"Kafka node {e['id']} (port {e['port']}) was not ready in time (brokers it "
                    f"reports: {seen}, expected {sorted(expect)})\n{self._diagnosis(e)}")
            time.sleep(0.1)

    def _state(self, layout: dict[str, Any], entries: list[dict[str, Any]], lib: Path,
               started_at: float) -> dict[str, Any]:
        bootstrap = ",".join(f"127.0.0.1:{e['port']}" for e in entries)
        sasl = ",".join(f"127.0.0.1:{e['sasl_port']}" for e in entries if e.get("sasl_port"))
        return {
            "settings": {"broker_url": bootstrap, "broker_kind": "kafka"},
            "version": layout["version"],
            "cluster_id": layout["cluster_id"],
            "bootstrap": bootstrap,
            "sasl_bootstrap": sasl or None,
            "lib": str(lib),
            "nodes": entries,
            "started_at": started_at,
        }

    @staticmethod
    def _info(state: dict[str, Any]) -> dict[str, Any]:
        return {
            "bootstrap": state["bootstrap"],
            "sasl_bootstrap": state.get("sasl_bootstrap"),
            "version": state["version"],
            "cluster_id": state["cluster_id"],
            "started_at": state["started_at"],
            "nodes": [{k: e.get(k) for k in ("id", "pid", "port", "controller_port", "sasl_port", "log",
                                             "console", "data_dir")} for e in state["nodes"]],
        }

    # -- public API ---------------------------------------------------------------------------
    def up(self, nodes: int = 1, timeout: float = 120.0, *, fresh: bool = False,
           config: dict[str, Any] | None = None, sasl_ssl: SaslSsl | None = None) -> dict[str, Any]:
        """Start a cluster of ``nodes`` (1 or 3) combined broker+controller nodes, or return the
        running one. A cluster that ran before in this run dir with the same number of nodes is
        started again with its data and ports when those ports are free; otherwise (or with
        ``fresh=True``) the old data is deleted and a new cluster id and new ports are chosen.
        ``config`` overrides/extends every node's server.properties. ``sasl_ssl``: every node also
        listens for SASL_SSL clients (:class:`SaslSsl`; ``sasl_bootstrap`` in the info dict); the
        PLAINTEXT listener stays for the nodes themselves and the readiness probe. Returns the info
        dict: ``bootstrap``, ``nodes`` (id, pid, port, controller_port, log, ...), ``version``."""
        if nodes not in (1, 3):
            raise KafkaClusterError(f"nodes must be 1 or 3, not {nodes}")
        deadline = time.monotonic() + timeout
        lib = ensure_jars()
        java = find_java()
        major = _java_major(java)
        if major is not None and major < 17:
            raise KafkaClusterError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; {java} is {major}")
        with self._lock():
            state = self._read()
            if state:
                entries = state.get("nodes") or []
                if (not fresh and len(entries) == nodes and all(_is_ours(e) for e in entries)
                        and not any(_is_paused(e) for e in entries)
                        and all(probe_kafka(int(e["port"]), 1.0) is not None for e in entries)):
                    return self._info(state)
                if any(_is_paused(e) and _is_ours(e) for e in entries) and not fresh:
                    raise KafkaClusterError("a node is paused (SIGSTOP): resume_node() it first, "
                                            "or down() the cluster")
                terminate_all(entries, 30.0)
                with contextlib.suppress(FileNotFoundError):
                    self.state_file.unlink()

            layout = self._read_json(self.layout_file)
            reuse = (not fresh and layout is not None and layout.get("version") == KAFKA_VERSION
                     and len(layout.get("nodes", [])) == nodes
                     and all(("sasl_port" in n) == (sasl_ssl is not None) for n in layout["nodes"])
                     and all(port_is_free(n["port"]) and port_is_free(n["controller_port"])
                             for n in layout["nodes"]))
            attempts = 1 if reuse else 2
            for attempt in range(attempts):
                if not reuse:
                    for old in self.base.glob("node-*"):
                        shutil.rmtree(old, ignore_errors=True)
                    layout = self._new_layout(nodes, sasl_ssl is not None)
                    self._write_json(self.layout_file, layout)
                assert layout is not None
                self._prepare(layout, dict(config or {}), sasl_ssl)
                self._format(java, lib, layout, deadline, sasl_ssl)
                entries = [self._spawn(java, lib, n) for n in layout["nodes"]]
                try:
                    self._wait_ready(entries, {n["id"] for n in layout["nodes"]}, deadline)
                except KafkaClusterError as err:
                    terminate_all(entries, 5.0)
                    if attempt + 1 < attempts and "Address already in use" in str(err):
                        continue  # lost a port to someone else between choosing and binding
                    raise
                except BaseException:
                    terminate_all(entries, 5.0)
                    raise
                state = self._state(layout, entries, lib, time.time())
                self._write_json(self.state_file, state)
                return self._info(state)
            raise AssertionError("unreachable")

    def down(self, timeout: float = 30.0) -> bool:
        """Stop every node (SIGTERM, SIGKILL after ``timeout``; only processes that are still our
        java processes) and remove cluster.json. Data and layout.json stay for the next up()."""
        with self._lock():
            state = self._read()
            if state is None:
                return False
            stopped = terminate_all(state.get("nodes") or [], timeout)
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            return bool(stopped)

    def status(self) -> dict[str, Any]:
        state = self._read() or {}
        out: dict[str, Any] = {"run_dir": str(self.run_dir), "version": state.get("version", KAFKA_VERSION),
                               "bootstrap": state.get("bootstrap"), "nodes": []}
        for e in state.get("nodes") or []:
            alive = _is_ours(e)
            paused = alive and _is_paused(e)
            brokers = probe_kafka(int(e["port"]), 0.5) if alive and not paused else None
            out["nodes"].append({
                "id": e["id"], "pid": e.get("pid") if alive else None, "port": e["port"],
                "controller_port": e["controller_port"], "alive": alive, "paused": paused,
                "answering": brokers is not None, "brokers": brokers,
                "rss_bytes": _rss_bytes(int(e["pid"])) if alive else None,
                "log": e.get("log"),
            })
        out["running"] = bool(out["nodes"]) and all(n["alive"] and n["answering"] for n in out["nodes"])
        return out

    def alive(self) -> bool:
        """Every recorded node's process is running and is ours (paused counts as alive; no
        network request is made: see status() for that)."""
        state = self._read()
        return bool(state and state.get("nodes")) and all(_is_ours(e) for e in state["nodes"])  # type: ignore[index]

    def info(self) -> dict[str, Any] | None:
        state = self._read()
        return self._info(state) if state else None

    # -- fault injection -----------------------------------------------------------------------
    def _node(self, node_id: int, *, alive: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        state = self._read()
        if not state:
            raise KafkaClusterError(f"no Kafka cluster in {self.base}")
        for e in state.get("nodes") or []:
            if e["id"] == node_id:
                if alive and not _is_ours(e):
                    raise KafkaClusterError(f"Kafka node {node_id} (pid {e.get('pid')}) is not running")
                return state, e
        raise KafkaClusterError(f"no node {node_id} in the cluster in {self.base}")

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP a node: its connections stay open and nothing is answered (a hung broker)."""
        _, e = self._node(node_id)
        os.kill(int(e["pid"]), signal.SIGSTOP)
        deadline = time.monotonic() + 2
        while not _is_paused(e) and time.monotonic() < deadline:
            time.sleep(0.005)

    def resume_node(self, node_id: int) -> None:
        _, e = self._node(node_id)
        os.kill(int(e["pid"]), signal.SIGCONT)
        deadline = time.monotonic() + 2
        while _is_paused(e) and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """SIGTERM one node (a controlled shutdown); its ports and data stay recorded."""
        with self._lock():
            state, e = self._node(node_id, alive=False)
            terminate_all([e], timeout)
            e["pid"] = None
            e["starttime"] = None
            self._write_json(self.state_file, state)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (a crash: no controlled shutdown); its ports and data stay recorded."""
        with self._lock():
            state, e = self._node(node_id, alive=False)
            if _is_ours(e):
                os.kill(int(e["pid"]), signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _is_ours(e) and time.monotonic() < deadline:
                    time.sleep(0.02)
            e["pid"] = None
            e["starttime"] = None
            self._write_json(self.state_file, state)

    def start_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a stopped node again on its ports and data; returns once it answers and lists
        itself as an alive broker."""
        with self._lock():
            state, e = self._node(node_id, alive=False)
            if _is_ours(e):
                return
            lib = Path(state["lib"])
            node = {k: e[k] for k in ("id", "port", "controller_port", "sasl_port") if k in e}
            new = self._spawn(find_java(), lib, node)
            try:
                self._wait_ready([new], {node_id}, time.monotonic() + timeout)
            except BaseException:
                terminate_all([new], 5.0)
                raise
            state["nodes"] = [new if x["id"] == node_id else x for x in state["nodes"]]
            self._write_json(self.state_file, state)


@contextlib.contextmanager
def kafka_cluster(run_dir: str | os.PathLike[str], nodes: int = 1, **up_kwargs: Any) -> Iterator[dict[str, Any]]:
    """``with kafka_cluster(tmp, nodes=3) as info:`` the cluster is up inside, down after."""
    cluster = KafkaCluster(run_dir)
    info = cluster.up(nodes, **up_kwargs)
    try:
        yield info
    finally:
        cluster.down()
