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
