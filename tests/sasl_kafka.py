"""An Apache Kafka that requires SASL_SSL of its clients, as production clusters do: the embedded
cluster (ops/kafka_cluster.py) with a SASL_SSL listener (SCRAM-SHA-512 and PLAIN) whose TLS
certificate is signed by a throwaway CA made here with openssl. The fixtures are in
tests/conftest.py (``sasl_kafka``, ``sasl_settings``); the tests that use them are marked
``kafka`` (they start their own cluster)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

USER = "creditstream"
PASSWORD = "sasl-Pa55word-never-logged"
CLIENT_KEY_PASSWORD = "client-key-Pa55"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA's certificate (PEM): the clients' ``ssl_cafile``."""
    keystore: Path
    """The broker's unencrypted PKCS#8 key and certificate, in one PEM file (``ssl.keystore.type=PEM``)."""
    other_ca: Path
    """A CA that signed nothing the broker has: a client trusting only it must refuse the broker."""
    client_cert: Path
    client_key: Path
    """A client certificate signed by ``ca``, and its key (PKCS#8, encrypted with :data:`CLIENT_KEY_PASSWORD`)."""


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(out: Path, name: str) -> None:
    _openssl(out, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=creditstream {name}")


def make_certificates(out: Path) -> Certificates:
    """A CA, a broker certificate it signs for 127.0.0.1 / localhost, and an unrelated CA."""
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("no openssl to make the SASL_SSL broker's certificates")
    out.mkdir(parents=True, exist_ok=True)
    _ca(out, "ca")
    _ca(out, "other-ca")
    (out / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(out, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost")
    _openssl(out, "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", "2", "-extfile", "san.cnf")
    _openssl(out, "pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8")
    keystore = out / "broker-keystore.pem"
    keystore.write_text((out / "broker.pk8").read_text() + (out / "broker.pem").read_text())
    _openssl(out, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "client-plain.key", "-out", "client.csr", "-subj", "/CN=creditstream")
    _openssl(out, "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "client.pem", "-days", "2")
    _openssl(out, "pkcs8", "-topk8", "-in", "client-plain.key", "-out", "client.key",
             "-passout", f"pass:{CLIENT_KEY_PASSWORD}")
    return Certificates(ca=out / "ca.pem", keystore=keystore, other_ca=out / "other-ca.pem",
                        client_cert=out / "client.pem", client_key=out / "client.key")


def skip_reason() -> str | None:
    """Why the embedded Kafka cannot start here (tests/integration/test_kafka_cluster.py's check)."""
    import os

    from ops.kafka_cluster import cache_dir

    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        return "the embedded Kafka needs Java 17+: no 'java' on PATH and no $JAVA_HOME"
    if not (cache_dir() / "lib" / ".resolved").is_file() and not shutil.which("mvn"):
        return f"the embedded Kafka's jars are not cached in {cache_dir()} and there is no 'mvn' to resolve them"
    return None
