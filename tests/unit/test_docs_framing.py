"""docs/events.md's confluent-kafka example, as a department copies it: its ``frame`` and ``record``
run as written (the producer part is not run: no broker here), the bytes are what creditstream
decodes, and a value of the wrong type is refused before anything would be sent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.codec import AvroCodec

ROOT = Path(__file__).resolve().parents[2]


def the_example() -> str:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M) if "def frame(" in b]
    return block


def framing(monkeypatch) -> dict:
    """The example's names after running it up to the producer, then its ``record = {...}``."""
    block = the_example()
    head, _, rest = block.partition("producer = Producer(")
    (record_literal,) = re.findall(r"^record = \{.*?^\}\n", rest, re.S | re.M)
    monkeypatch.chdir(ROOT)  # the example reads Path("schemas") from the repository's root
    names: dict = {}
    exec(compile(head + record_literal, "docs/events.md", "exec"), names)  # noqa: S102 - the docs' own code
    return names


def test_the_examples_bytes_are_what_creditstream_decodes(monkeypatch):
    names = framing(monkeypatch)
    value = names["frame"](names["record"])
    name, record = AvroCodec().decode(value)
    assert name == "creditstream.AdministrativePenalty"
    assert {k: record[k] for k in names["record"]} == names["record"]


@pytest.mark.parametrize(("field", "value"), [("simplified_procedure", "false"), ("fine_amount", "5"),
                                              ("subject_name", None)])
def test_the_example_refuses_a_value_of_the_wrong_type(monkeypatch, field, value):
    names = framing(monkeypatch)
    with pytest.raises(Exception, match=field):
        names["frame"]({**names["record"], field: value})
