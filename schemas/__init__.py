"""Avro schemas of the department-side events (plain .avsc files, namespace ``creditstream``).

Each schema is self-contained: the subject block (主体信息) is flattened into every record rather
than shared as a named type, so each file parses on its own with fastavro and avro-python3 and can
be registered as-is in a Confluent schema registry.

``registry.json`` holds the LOCAL registry's fixed schema ids: they never change, so a message
framed today still decodes tomorrow. Add new schemas with new ids; never renumber.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

__all__ = ["SCHEMA_DIR", "NAMESPACE", "load_schema", "all_schemas", "local_ids", "full_name_of"]

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "creditstream"
_REGISTRY_FILE = "registry.json"


@cache
def _by_full_name() -> dict[str, tuple[Path, dict]]:
    out: dict[str, tuple[Path, dict]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"
        out[full] = (path, schema)
    return out


def full_name_of(name: str) -> str:
    """Resolve a file stem (``administrative_penalty``), a short name (``AdministrativePenalty``)
    or a full name (``creditstream.AdministrativePenalty``) to the full name. KeyError if unknown."""
    schemas = _by_full_name()
    if name in schemas:
        return name
    for full, (path, _schema) in schemas.items():
        if name == path.stem or name == path.name or name == full.rsplit(".", 1)[-1]:
            return full
    raise KeyError(f"unknown schema {name!r}; known: {sorted(schemas)}")


def load_schema(name: str) -> dict:
    """The schema as JSON (a fresh copy), by file stem, short name or full name."""
    return copy.deepcopy(_by_full_name()[full_name_of(name)][1])


def all_schemas() -> dict[str, dict]:
    """Every schema (fresh copies) keyed by full name, e.g. ``creditstream.AdministrativePenalty``."""
    return {full: copy.deepcopy(schema) for full, (_path, schema) in _by_full_name().items()}


@cache
def _ids() -> dict[str, int]:
    ids = json.loads((SCHEMA_DIR / _REGISTRY_FILE).read_text(encoding="utf-8"))
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"{_REGISTRY_FILE}: duplicate schema ids")
    return ids


def local_ids() -> dict[str, int]:
    """The local registry's fixed ids: full name -> id."""
    return dict(_ids())
