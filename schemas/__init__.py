"""Avro schemas of the department-side events (plain .avsc files, namespace ``creditstream``).

Each schema is self-contained: the subject block (主体信息) is flattened into every record rather
than shared as a named type, so each file parses on its own with fastavro and avro-python3 and can
be registered as-is in a Confluent schema registry.

``registry.json`` holds the LOCAL registry's fixed schema ids of the current schemas: they never
change, so a message framed today still decodes tomorrow. Add new schemas with new ids; never
renumber. A schema that changes (even compatibly) gets a new id too: the previous version keeps its
id, read-only, as a retired version (``retired.json``: id -> its ``file`` here, e.g.
``list_change_v1.avsc``, kept as it was first committed). Decoding a retired id reads the body with
its own schema; the codec then gives the record the current schema's defaults for the fields it
lacks (streams/codec.py). Encoding always uses the current id. tests/unit/test_schemas.py pins each
id to its schema's fingerprint. ``reused_by``: the id of a later version that was, by mistake,
framed with the retired id for a while (ListChange's second version with id 10): a body the retired
schema leaves bytes of is read with that one.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

__all__ = ["SCHEMA_DIR", "NAMESPACE", "load_schema", "all_schemas", "local_ids", "retired_schemas",
           "reused_ids", "full_name_of"]

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "creditstream"
_REGISTRY_FILE = "registry.json"
_RETIRED_FILE = "retired.json"


@cache
def _retired() -> dict[int, dict]:
    raw = json.loads((SCHEMA_DIR / _RETIRED_FILE).read_text(encoding="utf-8"))
    return {int(sid): entry for sid, entry in raw.items()}


def _retired_files() -> dict[int, str]:
    """Retired schema versions: id -> file name in this directory."""
    return {sid: entry["file"] for sid, entry in _retired().items()}


@cache
def _by_full_name() -> dict[str, tuple[Path, dict]]:
    retired = set(_retired_files().values())
    out: dict[str, tuple[Path, dict]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        if path.name in retired:
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"
        if full in out:
            raise ValueError(f"{path.name} and {out[full][0].name} are both {full}: a previous version "
                             f"belongs in {_RETIRED_FILE}")
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
    reused = set(ids.values()) & set(_retired_files())
    if reused:
        raise ValueError(f"{_REGISTRY_FILE}: ids {sorted(reused)} are retired versions' ({_RETIRED_FILE}): "
                         "an id never changes meaning")
    return ids


def local_ids() -> dict[str, int]:
    """The local registry's fixed ids: full name -> id."""
    return dict(_ids())


def retired_schemas() -> dict[int, dict]:
    """The retired versions (fresh copies) by their ids: read-only, decoded, never encoded."""
    return {sid: json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
            for sid, name in _retired_files().items()}


def reused_ids() -> dict[int, int]:
    """Retired id -> the id of the later version that was also framed with it by mistake."""
    return {sid: int(entry["reused_by"]) for sid, entry in _retired().items() if entry.get("reused_by")}
