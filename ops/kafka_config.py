"""The configuration files of the embedded Apache Kafka cluster's nodes (ops/kafka_cluster.py):
server.properties for a combined broker+controller node sized for a small machine, and the log4j2
files of the nodes and of the storage tool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SaslSsl:
    """A ``SASL_SSL`` client listener on every node, beside its PLAINTEXT one (which the readiness
    probe and the other nodes keep using): clients authenticate with SASL over TLS, as a production
    cluster requires. ``keystore``: a PEM file with the server's unencrypted PKCS#8 private key and
    its certificate chain. ``users``: name -> password, created as SCRAM credentials when the log
    dirs are formatted and as PLAIN users in the listener's JAAS configuration. ``client_ca``: a PEM
    CA certificate; with it, clients must also present a certificate it signed (mutual TLS).
    ``acl_admin``: the name of one of ``users``; with it the nodes enforce ACLs as a production
    cluster does (KRaft's ``StandardAuthorizer``, ``allow.everyone.if.no.acl.found=false``): that user
    is a super user (it creates the ACLs), and so is ``User:ANONYMOUS``, the principal of the nodes'
    own PLAINTEXT and CONTROLLER listeners (without it a node cannot talk to its controller). So the
    PLAINTEXT listener is unrestricted: it is for the nodes and the readiness probe, never a client's."""

    keystore: Path
    users: Mapping[str, str] = field(default_factory=dict)
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-512", "PLAIN")
    client_ca: Path | None = None
    acl_admin: str | None = None

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM credentials."""
        return [arg for mech in self.mechanisms if mech in SCRAM_MECHANISMS
                for name, password in self.users.items()
                for arg in ("--add-scram", f"{mech}=[name={name},password={password}]")]

    def properties(self) -> dict[str, Any]:
        """The listener's settings in server.properties (the listener itself is added by the caller)."""
        prefix = "listener.name.sasl_ssl."
        props: dict[str, Any] = {
            "sasl.enabled.mechanisms": ",".join(self.mechanisms),
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.keystore),
        }
        if self.client_ca is not None:
            props.update({f"{prefix}ssl.client.auth": "required", f"{prefix}ssl.truststore.type": "PEM",
                          f"{prefix}ssl.truststore.location": str(self.client_ca)})
        for mech in self.mechanisms:
            if mech in SCRAM_MECHANISMS:
                module = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            elif mech == "PLAIN":
                users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
                module = f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
            else:
                raise ValueError(f"SASL mechanism {mech!r}: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN")
            props[f"{prefix}{mech.lower()}.sasl.jaas.config"] = module
        if self.acl_admin is not None:
            if self.acl_admin not in self.users:
                raise ValueError(f"acl_admin {self.acl_admin!r} is not one of the users")
            props.update({
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "false",
                "super.users": f"User:ANONYMOUS;User:{self.acl_admin}",
            })
        return props


def server_properties(layout: dict[str, Any], node: dict[str, Any], data_dir: Path,
                      extra: dict[str, Any], sasl_ssl: SaslSsl | None = None) -> dict[str, Any]:
    """server.properties of one combined broker+controller node of ``layout`` (``sasl_ssl``: with a
    SASL_SSL client listener on the node's ``sasl_port``)."""
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
    if sasl_ssl is not None:
        listener = f"SASL_SSL://127.0.0.1:{node['sasl_port']}"
        props["listeners"] += f",{listener}"
        props["advertised.listeners"] += f",{listener}"
        props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        props.update(sasl_ssl.properties())
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
