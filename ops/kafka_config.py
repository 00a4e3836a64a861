"""The configuration files of the embedded Apache Kafka cluster's nodes (ops/kafka_cluster.py):
server.properties for a combined broker+controller node sized for a small machine, and the log4j2
files of the nodes and of the storage tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def server_properties(layout: dict[str, Any], node: dict[str, Any], data_dir: Path,
                      extra: dict[str, Any]) -> dict[str, Any]:
    """server.properties of one combined broker+controller node of ``layout``."""
    n = len(layout["nodes"])
    rf = min(n, 3)
    isr = 2 if n >= 3 else 1
    voters = ",".join(f"{x['id']}@127.0.0.1:{x['controller_port']}" for x in layout["nodes"])
    props: dict[str, Any] = {
        "process.roles": "broker,controller",
        "node.id": node["id"],
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node['port']},CONTROLLER://127.0.0.1:{node['controller_port']}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node['port']}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": 4,
        "default.replication.factor": n,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 12,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": 8,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "group.initial.rebalance.delay.ms": 0,
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "log.retention.check.interval.ms": 10000,
        # a paused or stopped follower leaves the ISR after 10 s (default 30 s), so acks=all
        # produce goes on within a client's request timeout
        "replica.lag.time.max.ms": 10000,
        # a small machine: fewer threads than the defaults sized for a server
        "num.network.threads": 2,
        "num.io.threads": 4,
        "background.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "num.replica.fetchers": 1,
    }
    props.update(extra)
    return props


def write_properties(path: Path, props: dict[str, Any]) -> None:
    def esc(v: Any) -> str:
        s = str(v).lower() if isinstance(v, bool) else str(v)
        return s.replace("\\", "\\\\").replace("\n", "\\n")
    path.write_text("".join(f"{k}={esc(v)}\n" for k, v in props.items()))


def write_node_log4j2(node_dir: Path, log_file: Path) -> Path:
    """A node logs to ``log_file`` (rolled at 20 MB, 3 kept), without per-request chatter."""
    path = node_dir / "log4j2.properties"
    log = str(log_file).replace("\\", "/")
    path.write_text("\n".join([
        "status = warn",
        # JVM exit stops nothing of log4j's: the last lines of a shutdown stay in the file
        "shutdownHook = disable",
        "appender.file.type = RollingFile",
        "appender.file.name = file",
        f"appender.file.fileName = {log}",
        f"appender.file.filePattern = {log}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 20MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = file",
        # per-request and per-partition chatter
        "logger.request.name = kafka.request.logger",
        "logger.request.level = WARN",
        "logger.statechange.name = state.change.logger",
        "logger.statechange.level = WARN",
        "logger.storage.name = org.apache.kafka.storage.internals",
        "logger.storage.level = WARN",
        "logger.authorizer.name = kafka.authorizer.logger",
        "logger.authorizer.level = WARN",
        "",
    ]))
    return path


def write_tool_log4j2(base: Path) -> Path:
    """The storage tool logs warnings to stderr only."""
    path = base / "log4j2-tool.properties"
    path.write_text("\n".join([
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = out",
        "appender.out.target = SYSTEM_ERR",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = WARN",
        "rootLogger.appenderRef.out.ref = out",
        "",
    ]))
    return path
