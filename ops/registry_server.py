"""An embedded Confluent-compatible schema registry: Apicurio Registry 2.4.2.Final (its
``/apis/ccompat/v7`` API, in-memory storage) built from Maven Central by ``deploy/apicurio/pom.xml``,
for testing creditstream's registry path (``schema_registry`` = a URL) against a real registry.

Maven Central has the registry only as a library jar, so the pom runs the Quarkus build on it once
into ``cache_dir()`` (``$CREDITSTREAM_CACHE`` or ``~/.cache/creditstream``, then
``apicurio-<version>``), outside the work tree: the first build downloads about 230 MB and takes
about 4 minutes; later starts need neither Maven nor the network. A start takes 5-15 s and
~200 MiB. Only Avro is needed here (JSON Schema compatibility checks would fail: their validator is
not on Maven Central).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ops.kafka_jars import cache_root, find_java
from ops.processes import CHILDREN, file_tail, free_port_from, reap

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "apicurio"
POM = DEPLOY / "pom.xml"
VERSION = "2.4.2.Final"
RUNNER = "creditstream-apicurio-registry-1-runner.jar"
CCOMPAT = "/apis/ccompat/v7"
JVM_OPTS = ("-Xmx384m", "-XX:TieredStopAtLevel=1")
_MARKER = ".built"


class RegistryServerError(RuntimeError):
    """The embedded registry could not be built or started."""


def cache_dir() -> Path:
    return cache_root() / f"apicurio-{VERSION}"


def _digest() -> str:
    h = hashlib.sha256(POM.read_bytes())
    for src in sorted((DEPLOY / "src").rglob("*.java")):
        h.update(src.read_bytes())
    return h.hexdigest()


def ensure_build(*, quiet: bool = False) -> Path:
    """The runner jar, built with Maven on first use (a marker holding the sources' digest makes
    later calls return at once; a file lock serialises concurrent callers)."""
    out = cache_dir()
    runner, marker, digest = out / RUNNER, out / _MARKER, _digest()
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == digest and runner.is_file():
            return runner
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".apicurio-{VERSION}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            if marker.read_text().strip() == digest and runner.is_file():
                return runner
        mvn = shutil.which("mvn")
        if not mvn:
            raise RegistryServerError("building the embedded schema registry needs Maven: no 'mvn' on PATH")
        find_java()
        if not quiet:
            print(f"building Apicurio Registry {VERSION} with Maven (first use only, ~4 min)...",
                  file=sys.stderr, flush=True)
        started = time.monotonic()
        shutil.rmtree(out, ignore_errors=True)
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), "package", f"-Dregistry.build.dir={out}"]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            raise RegistryServerError(f"mvn did not finish in 30 min: {' '.join(cmd)}") from None
        if done.returncode != 0 or not runner.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise RegistryServerError(f"mvn could not build the registry (exit {done.returncode}): "
                                      f"{' '.join(cmd)}\n{tail}")
        marker.write_text(digest + "\n")
        if not quiet:
            print(f"built Apicurio Registry {VERSION} in {time.monotonic() - started:.0f}s: {runner}",
                  file=sys.stderr, flush=True)
        return runner


def ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class RegistryServer:
    """One registry process on a free loopback port; ``url`` is the Confluent-compatible API's."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.dir = Path(run_dir) / "registry"
        self.log = self.dir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + CCOMPAT

    def up(self, timeout: float = 180.0) -> str:
        runner = ensure_build()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_from(set())
        cmd = [find_java(), *JVM_OPTS, "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
               "-jar", str(runner)]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True, close_fds=True)
        CHILDREN[self.proc.pid] = self.proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryServerError(f"the registry exited with {self.proc.returncode}:\n"
                                          f"{file_tail(self.log)}")
            if ready(self.base):
                return self.url
            time.sleep(0.3)
        self.down()
        raise RegistryServerError(f"the registry did not answer /health/ready within {timeout:.0f}s:\n"
                                  f"{file_tail(self.log)}")

    def down(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reap(proc.pid)


@contextlib.contextmanager
def registry_server(run_dir: str | os.PathLike[str]) -> Iterator[RegistryServer]:
    server = RegistryServer(run_dir)
    server.up()
    try:
        yield server
    finally:
        server.down()
