"""The catalogue of event kinds (domain/kinds.py) is the one source: schemas, topics and the code
that reads them agree with it."""

from __future__ import annotations

import json
from pathlib import Path

from domain import kinds
from domain.validate import KIND_OF_SCHEMA
from streams import samples, topics

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_every_schema_file_is_in_the_catalogue_and_back():
    names = set()
    for path in SCHEMAS.glob("*.avsc"):
        schema = json.loads(path.read_text())
        names.add(f"{schema['namespace']}.{schema['name']}")
    assert names == {k.schema for k in kinds.KINDS}


def test_every_kind_has_a_topic_and_the_readers_agree():
    for k in kinds.KINDS:
        assert k.topic in topics.SPEC_OF_TOPIC, k
        assert k.role in ("decision", "credit_office", "feedback", "registration", "output"), k
    assert KIND_OF_SCHEMA == {k.schema: k.name for k in kinds.KINDS if k.role != "output"}
    assert samples.SCHEMA_OF_KIND == {k.name: k.schema for k in kinds.KINDS}
    assert kinds.REGISTRATION_SCHEMA not in kinds.INGEST_SCHEMAS  # the registry agent takes those
    assert kinds.LIST_CHANGE_SCHEMA not in kinds.INGEST_SCHEMAS and len(kinds.INGEST_SCHEMAS) == 9
    assert topics.SPEC_OF_KIND["court_deletion"] is topics.COURT
    assert topics.SPEC_OF_KIND["objection"] is topics.CREDIT_OFFICE
