"""Who may read the query API (creditstream/api.py), and where it may listen.

Roles, lowest first:

* ``public``: public credit information. Natural persons' ID numbers and names are masked in
  every answer (domain/privacy.py), and a natural person cannot be looked up (403).
* ``personal``: everything, personal information included (RULES.md section 7: for units
  entitled to it). Implies ``public``.

Clients present a bearer token (``Authorization: Bearer <token>``). The tokens are in a TOML file
named by the setting ``api_tokens_file``, one ``[[token]]`` table per token::

    [[token]]
    client = "publicity-site"        # the name the request log shows
    role = "public"
    sha256 = "9f86d081884c7d65..."   # SHA-256 of the token, hex (the file then holds no token)

    [[token]]
    client = "joint-punishment"
    role = "personal"
    token = "..."                    # or the token itself (at least 32 characters)

A presented token is hashed (SHA-256) and compared with every entry in constant time
(:func:`hmac.compare_digest`); the token itself is never logged. The file is read when the API
starts: restart it to apply a change.

Open routes (:func:`is_open_path`): ``/health`` and the public disclosure (``/disclosure/...``)
answer without a token; a token that is not valid is refused (401) there too.

Without a token file every request is anonymous and gets the role ``api_anonymous_role``
(default ``public``); that is allowed only on a loopback address (:func:`serving_problem`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("public", "personal")
OPEN_PATHS = frozenset({"/health"})
"""Answered without a token when tokens are configured: a load balancer's health check."""
OPEN_PATH_PREFIXES = ("/disclosure",)
"""Also answered without a token, by decision: the public disclosure (信用信息公示, creditstream/
disclosure.py) is public information by nature (双公示, RULES.md 2). Its pages serve everyone, a
personal token included, at the public role's redaction (natural persons' ID numbers and names
masked), and never look up a natural person by ID number."""
RANK = {"anonymous": 0, "public": 1, "personal": 2}
MIN_TOKEN_CHARS = 32


class AccessConfigError(ValueError):
    """The API's access settings are unusable (the CLI exits 2 with this one line)."""


@dataclass(frozen=True)
class Client:
    """Who made a request: a token's client name and role, or ``anonymous``."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


ANONYMOUS = Client("anonymous", "anonymous")


@dataclass(frozen=True)
class Tokens:
    """The token file: SHA-256 digests of the tokens, each with its client."""

    entries: tuple[tuple[bytes, Client], ...]

    def client_of(self, token: str) -> Client | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, client in self.entries:  # every entry, whichever matches: no early exit
            if hmac.compare_digest(known, digest):
                found = client
        return found


def load_tokens(path: str) -> Tokens:
    """Read a token file (module docstring); AccessConfigError says what is wrong with it."""
    where = f"api_tokens_file {path}"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccessConfigError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"{where} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccessConfigError(f"{where}: {exc}") from None
    tables = data.get("token")
    if not isinstance(tables, list) or not tables:
        raise AccessConfigError(f"{where}: no [[token]] entries")
    entries: list[tuple[bytes, Client]] = []
    for n, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise AccessConfigError(f"{where}: token {n} is not a table")
        client, role = table.get("client"), table.get("role")
        if not isinstance(client, str) or not client.strip():
            raise AccessConfigError(f"{where}: token {n} has no client name")
        if role not in ROLES:
            raise AccessConfigError(f"{where}: token {n} ({client}): role must be one of {', '.join(ROLES)}")
        unknown = set(table) - {"client", "role", "sha256", "token"}
        if unknown:
            raise AccessConfigError(f"{where}: token {n} ({client}): unknown key(s) {', '.join(sorted(unknown))}")
        digest = _digest_of(table, f"{where}: token {n} ({client})")
        if any(hmac.compare_digest(digest, known) for known, _ in entries):
            raise AccessConfigError(f"{where}: token {n} ({client}) repeats an earlier token")
        entries.append((digest, Client(client.strip(), role)))
    return Tokens(tuple(entries))


def _digest_of(table: dict[str, Any], where: str) -> bytes:
    sha, token = table.get("sha256"), table.get("token")
    if (sha is None) == (token is None):
        raise AccessConfigError(f"{where}: give either sha256 (recommended) or token")
    if sha is not None:
        if not isinstance(sha, str) or len(sha) != 64:
            raise AccessConfigError(f"{where}: sha256 must be 64 hexadecimal digits")
        try:
            return bytes.fromhex(sha)
        except ValueError:
            raise AccessConfigError(f"{where}: sha256 must be 64 hexadecimal digits") from None
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or token != token.strip():
        raise AccessConfigError(f"{where}: token must be at least {MIN_TOKEN_CHARS} characters, no spaces "
                                "around it")
    return hashlib.sha256(token.encode()).digest()


def is_open_path(path: str) -> bool:
    """True for a path answered without a token (:data:`OPEN_PATHS`, :data:`OPEN_PATH_PREFIXES`:
    the prefix itself or a path below it)."""
    return path in OPEN_PATHS or any(path == p or path.startswith(p + "/") for p in OPEN_PATH_PREFIXES)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a name) is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def serving_problem(host: str, settings: Any) -> str | None:
    """Why the API must not start on ``host`` with these settings, or None: a non-loopback address
    needs tokens (``api_tokens_file``)."""
    if is_loopback(host) or settings.api_tokens_file:
        return None
    return (f"refusing to serve the API on {host}: not a loopback address, and no api_tokens_file is set "
            "(configure tokens, see docs/operations.md, or bind 127.0.0.1)")


def exposure_warnings(host: str, settings: Any) -> list[str]:
    """What ``config check`` warns about when the API listens on ``host`` (web_bind)."""
    if is_loopback(host):
        return []
    out = []
    if not settings.api_tokens_file:
        out.append(f"the API would listen on {host} without authentication: `creditstream api` and "
                   "`worker --web` refuse to start until api_tokens_file is set")
    if not settings.api_tls_certfile:
        out.append(f"the API would listen on {host} without TLS: set api_tls_certfile/api_tls_keyfile, or "
                   "put a TLS-terminating reverse proxy in front (docs/operations.md)")
    return out


def settings_problems(settings: Any) -> list[str]:
    """The access settings' problems, for Settings.validate."""
    problems = []
    if settings.api_anonymous_role not in ROLES:
        problems.append(f"api_anonymous_role: {settings.api_anonymous_role!r} is not one of {', '.join(ROLES)}")
    if settings.api_tokens_file:
        try:
            load_tokens(settings.api_tokens_file)
        except AccessConfigError as exc:
            problems.append(str(exc))
    if bool(settings.api_tls_certfile) != bool(settings.api_tls_keyfile):
        problems.append("api_tls_certfile and api_tls_keyfile: give both, or neither")
    elif settings.api_tls_certfile:
        try:
            server_ssl_context(settings)
        except AccessConfigError as exc:
            problems.append(str(exc))
    return problems


class Access:
    """The access rules of one API server: its tokens (None: none configured) and anonymous role."""

    def __init__(self, tokens: Tokens | None, anonymous_role: str = "public"):
        self.tokens = tokens
        self.anonymous = Client("anonymous", anonymous_role) if tokens is None else ANONYMOUS

    @classmethod
    def from_settings(cls, settings: Any) -> Access:
        if settings.api_anonymous_role not in ROLES:
            raise AccessConfigError(f"api_anonymous_role: {settings.api_anonymous_role!r} is not one of "
                                    f"{', '.join(ROLES)}")
        tokens = load_tokens(settings.api_tokens_file) if settings.api_tokens_file else None
        return cls(tokens, settings.api_anonymous_role)

    def client_of(self, authorization: str | None) -> Client | None:
        """The client of a request with this ``Authorization`` header: anonymous when there is no
        header (or no token file), None for a token that is not valid."""
        if self.tokens is None or authorization is None:
            return self.anonymous
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.tokens.client_of(token.strip())


def server_ssl_context(settings: Any) -> ssl.SSLContext | None:
    """The API's TLS server context from ``api_tls_certfile``/``api_tls_keyfile`` (None: plain HTTP)."""
    if not settings.api_tls_certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.api_tls_certfile, settings.api_tls_keyfile or None,
                            password=settings.api_tls_password or None)
    except FileNotFoundError as exc:
        raise AccessConfigError(f"api_tls: {exc.filename} does not exist") from None
    except (ssl.SSLError, OSError) as exc:
        raise AccessConfigError(f"api_tls_certfile/api_tls_keyfile do not load: {exc}") from None
    return ctx
