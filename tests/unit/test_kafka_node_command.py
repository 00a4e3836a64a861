"""The embedded Apache Kafka node's command line (ops/kafka_cluster.py)."""

from __future__ import annotations

from pathlib import Path

from ops.kafka_cluster import KafkaCluster


def test_a_node_logs_its_collector_pauses_beside_its_server_log(tmp_path):
    cluster = KafkaCluster(tmp_path)
    cmd = cluster._node_cmd("java", Path("/lib"), 0)  # noqa: SLF001
    gc = [a for a in cmd if a.startswith("-Xlog:gc:file=")]
    assert gc == [f"-Xlog:gc:file={cluster.node_dir(0) / 'gc.log'}:time,uptime:filecount=2,filesize=10m"]
    assert cmd.index(gc[0]) < cmd.index("kafka.Kafka")  # a JVM option, before the main class
    assert cluster.node_gc_log(0).parent == cluster.node_log(0).parent


def test_kafka_opts_are_added_after_the_nodes_own_options(tmp_path, monkeypatch):
    cluster = KafkaCluster(tmp_path)
    monkeypatch.setenv("KAFKA_OPTS", " -Xmx1g  -XX:StartFlightRecording=filename=/tmp/n.jfr ")
    cmd = cluster._node_cmd("java", Path("/lib"), 0)  # noqa: SLF001
    main = cmd.index("kafka.Kafka")
    assert cmd.index("-Xmx1g") > cmd.index("-Xmx512m")  # later: the operator's heap wins
    assert cmd.index("-XX:StartFlightRecording=filename=/tmp/n.jfr") < main
    assert cmd.index("-Xmx1g") > max(i for i, a in enumerate(cmd) if a.startswith("-X") and a != "-Xmx1g"
                                     and not a.startswith("-XX:StartFlight"))  # after every option of the node's
    monkeypatch.delenv("KAFKA_OPTS")
    assert "-Xmx1g" not in cluster._node_cmd("java", Path("/lib"), 0)  # noqa: SLF001
