"""Apache Kafka for the embedded cluster: the version pinned in ``deploy/kafka/pom.xml``, its jars
resolved once with Maven into a cache outside the work tree (``$CREDITSTREAM_CACHE`` or
``~/.cache/creditstream``, then ``kafka-<version>``), and the Java that runs it (17 or newer)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

POM = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
"""The pom that pins the Kafka version and resolves the broker's runtime classpath."""

_LOG_TAIL_LINES = 40
_MARKER = ".resolved"


class KafkaClusterError(RuntimeError):
    """The embedded Kafka cluster could not be set up, started, or is not in the state asked for."""


def _read_kafka_version(pom: Path = POM) -> str:
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError):
        return "unknown"
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    el = root.find("m:properties/m:kafka.version", ns)
    if el is None:
        el = root.find("properties/kafka.version")
    return (el.text or "").strip() if el is not None and el.text else "unknown"


KAFKA_VERSION: str = _read_kafka_version()
"""The ``kafka.version`` property of deploy/kafka/pom.xml: the one place the version is set."""


# --------------------------------------------------------------------------------------------
# jars


def cache_root() -> Path:
    """Where what the project resolves or builds once is kept, outside the work tree:
    ``$CREDITSTREAM_CACHE`` or ``~/.cache/creditstream``."""
    base = os.environ.get("CREDITSTREAM_CACHE") or str(Path.home() / ".cache" / "creditstream")
    return Path(base).expanduser().resolve()


def cache_dir() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}"


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH (Kafka 4 needs Java 17 or newer)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    path = shutil.which("java")
    if not path:
        raise KafkaClusterError(
            f"the embedded Kafka {KAFKA_VERSION} needs Java 17 or newer: no 'java' on PATH "
            "and no usable $JAVA_HOME (apt-get install openjdk-17-jre-headless)")
    return path


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (out.stderr + out.stdout).splitlines():
        if " version \"" in line:
            v = line.split('"')[1]
            head = v.split(".")[1] if v.startswith("1.") else v.split(".")[0].split("-")[0]
            with contextlib.suppress(ValueError):
                return int(head)
    return None


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def ensure_jars(*, quiet: bool = False) -> Path:
    """The directory of the broker's jars, resolved with Maven on first use (idempotent: a marker
    written after a successful resolve, holding the pom's digest, makes later calls return at once
    without Maven). Several processes may call this at once: a file lock serialises them."""
    if not POM.is_file() or KAFKA_VERSION == "unknown":
        raise KafkaClusterError(f"no Kafka version: {POM} is missing or has no <kafka.version>")
    root = cache_dir()
    lib = root / "lib"
    digest = _pom_digest()
    marker = lib / _MARKER
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == digest:
            return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            if marker.read_text().strip() == digest:
                return lib  # another process resolved it while we waited
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaClusterError(
                f"resolving Apache Kafka {KAFKA_VERSION} needs Maven (first start only): "
                "no 'mvn' on PATH (apt-get install maven)")
        find_java()
        if not quiet:
            print(f"resolving Apache Kafka {KAFKA_VERSION} with Maven (first start only)...",
                  file=sys.stderr, flush=True)
        started = time.monotonic()
        tmp = root / "lib.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        try:
            out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=1800)
        except subprocess.TimeoutExpired as e:
            raise KafkaClusterError(f"mvn did not finish in {e.timeout:.0f}s: {' '.join(cmd)}") from None
        jars = sorted(p.name for p in tmp.glob("*.jar")) if tmp.is_dir() else []
        if out.returncode != 0 or not any(j.startswith(f"kafka_2.13-{KAFKA_VERSION}") for j in jars):
            raise KafkaClusterError(
                f"mvn could not resolve Apache Kafka {KAFKA_VERSION} (exit {out.returncode}): "
                f"{' '.join(cmd)}\n{_tail(out.stdout + out.stderr)}")
        shutil.rmtree(lib, ignore_errors=True)
        os.replace(tmp, lib)
        (lib / _MARKER).write_text(digest + "\n")
        if not quiet:
            print(f"resolved Apache Kafka {KAFKA_VERSION}: {len(jars)} jars in {lib} "
                  f"({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
        return lib
