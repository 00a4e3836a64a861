"""ACLs on the SASL_SSL test cluster that enforces them (``SaslSsl(acl_admin=...)``, the ``acl_kafka``
fixture in tests/conftest.py): the ``kafka-acls.sh`` commands docs/operations.md gives an operator,
read back from the docs and applied as its admin would, with the admin client of confluent-kafka
(aiokafka's has no CreateAcls), as the super user ``admin`` over SASL_SSL."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ADMIN = "admin"
ADMIN_PASSWORD = "admin-Pa55word"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


@dataclass(frozen=True)
class Acl:
    """One allow rule: ``principal`` may do ``operation`` on the resource (``kind`` topic, group or
    cluster; ``name``, matched as a prefix when ``prefixed``)."""

    principal: str
    operation: str
    kind: str
    name: str
    prefixed: bool = False

    def renamed(self, topic_prefix: str, group_prefix: str) -> Acl:
        """The rule for another topic and group prefix (a test's): the docs' ``creditstream.`` replaced."""
        if self.kind == "topic":
            return Acl(self.principal, self.operation, self.kind, topic_prefix + self.name.removeprefix("creditstream."),
                       self.prefixed)
        if self.kind == "group":
            return Acl(self.principal, self.operation, self.kind, group_prefix + self.name.removeprefix("creditstream."),
                       self.prefixed)
        return self


def parse_acl_command(line: str) -> list[Acl]:
    """The rules one ``kafka-acls.sh ... --add`` command creates (one per operation and resource)."""
    words = shlex.split(line)
    principals, operations, resources = [], [], []
    prefixed = False
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--allow-principal":
            principals.append(words[i + 1])
        elif w == "--operation":
            operations.append(words[i + 1])
        elif w in ("--topic", "--group"):
            resources.append((w[2:], words[i + 1]))
        elif w == "--cluster":
            resources.append(("cluster", "kafka-cluster"))
            i += 1
            continue
        elif w == "--resource-pattern-type":
            prefixed = words[i + 1] == "prefixed"
        elif w in ("--bootstrap-server", "--command-config"):
            pass
        else:
            i += 1
            continue
        i += 2
    if "--add" not in words or not principals or not operations or not resources:
        raise ValueError(f"not a kafka-acls.sh --add command this reader knows: {line}")
    return [Acl(p, op, kind, name, prefixed and kind != "cluster")
            for p in principals for op in operations for kind, name in resources]


def documented_acls(block: str, docs: Path = DOCS) -> list[Acl]:
    """Every rule the ``kafka-acls.sh`` commands of docs/operations.md create in the code block whose
    first line is ``# ACLs: <block>`` (continued lines joined)."""
    text = docs.read_text(encoding="utf-8").replace("\\\n", " ")
    blocks = re.findall(r"```sh\n# ACLs: ([^\n]*)\n(.*?)```", text, re.S)
    found = [body for title, body in blocks if title.strip() == block]
    if len(found) != 1:
        raise AssertionError(f"{docs}: {len(found)} code blocks start with '# ACLs: {block}' "
                             f"(blocks: {[t for t, _ in blocks]})")
    return [acl for line in found[0].splitlines() if re.match(r"\s*kafka-acls\.sh\b", line)
            for acl in parse_acl_command(line)]


def _admin(sasl_bootstrap: str, ca: Path):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": sasl_bootstrap, "security.protocol": "SASL_SSL",
                        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN, "sasl.password": ADMIN_PASSWORD,
                        "ssl.ca.location": str(ca), "log_level": 3})


def _binding(acl: Acl):
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    kind = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.BROKER}[acl.kind]
    pattern = ResourcePatternType.PREFIXED if acl.prefixed else ResourcePatternType.LITERAL
    operation = AclOperation[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", acl.operation).upper()]
    return AclBinding(kind, acl.name, pattern, acl.principal, "*", operation, AclPermissionType.ALLOW)


def set_acls(sasl_bootstrap: str, ca: Path, principal: str, acls: Iterable[Acl], timeout: float = 30.0) -> None:
    """Make ``acls`` the only rules for ``principal``: those it lacks are created, then the others
    deleted (never a moment without the rules kept). Returns once the broker's authorizer has them
    (DescribeAcls answers from it)."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    client = _admin(sasl_bootstrap, ca)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    wanted = {_binding(a) for a in acls}
    have = set(client.describe_acls(everything, request_timeout=timeout).result())
    if wanted - have:
        for f in client.create_acls(list(wanted - have), request_timeout=timeout).values():
            f.result()
    gone = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                             b.permission_type) for b in have - wanted]
    if gone:
        for f in client.delete_acls(gone, request_timeout=timeout).values():
            f.result()
    deadline = time.monotonic() + timeout
    while True:
        have = set(client.describe_acls(everything, request_timeout=timeout).result())
        if have == wanted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the broker lists {sorted(map(str, have))} for {principal}, "
                                 f"not {sorted(map(str, wanted))}")
        time.sleep(0.05)
