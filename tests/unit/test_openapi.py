"""docs/openapi.yaml is a valid OpenAPI 3.0 document (what client generators and validators read),
and its enumerations name what the service serves."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from domain.history import ANNOUNCE_ORDER, TRANSITION_ORDER

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def spec() -> dict:
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def test_the_spec_is_valid_openapi_3_0():
    doc = spec()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)  # raises on any error (a 3.1-only form such as a type list among them)


def test_a_list_change_may_have_every_transition_the_rules_announce():
    served = set(TRANSITION_ORDER) | set(ANNOUNCE_ORDER)
    documented = set(spec()["components"]["schemas"]["ListChange"]["properties"]["transition"]["enum"])
    assert documented == served
