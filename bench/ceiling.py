"""A worker whose domain work is replaced by stand-ins: what the pipeline's plumbing alone allows
(``make bench-ceiling``).

``python -m bench.ceiling LEVEL worker ...`` runs ``creditstream worker`` in this process after
replacing, in the agents' modules only, the calls into the rules core:

* ``subject`` (the subject stage stood in for): the subject agent's rules step
  (``agents.subject.step``) becomes :func:`stand_in_step`: the new state is the subject's id and a
  count of its inputs, no list change, no link. The state's load and store (sinks/redis_state.py)
  still run, over that small state. The ingest agent is the real one.
* ``domain`` (both stood in for): besides the above, the ingest agent's validation
  (``agents.ingest.normalise_event``) becomes :func:`stand_in_record`: a record naming the
  subject's identifier from the decoded Avro body, unchecked. Attaching it (``plan``) and making
  its subject event (``events.of_record``) run as they are, over that small record.

Everything else is the product's own code, unchanged: the Avro decoding, the Kafka consumers and
producers, both hops through the broker, the fenced Redis transaction of every batch, the
positions, the outbox, the dead letters, the metrics, the runner and the event loop. So a run at
``domain`` measures the pipeline's plumbing, and the difference between it and the real pipeline
is the domain work as the worker pays for it (not as timed in process: ``bench.core``).

This is a measuring tool, never a way to run creditstream: nothing of the product imports it
(tests/unit/test_layers.py), and its states are not subject states.
"""

from __future__ import annotations

import sys
from typing import Any

LEVELS = ("subject", "domain")
STAND_IN_KIND = "stand_in"

# the identifier fields of the department schemas (schemas/*.avsc), the first one given names the subject
_IDENTIFIERS = ("uscc", "person_id_no", "reg_no", "org_code", "tax_no")


def stand_in_record(schema_name: str, raw: dict, *, event_time_ms: int | None = None) -> dict:
    """In place of domain/validate.py ``normalise_event``: a record that names its subject by the
    first identifier the body gives, as a USCC (so that ``plan`` attaches it directly), and nothing
    else. No field is checked. Its kind is :data:`STAND_IN_KIND` whatever the schema, so that every
    input becomes a plain record event (``events.of_record`` reads an objection's, a repair's or a
    feedback's own fields, which this record does not have)."""
    subject = next((str(raw[f]) for f in _IDENTIFIERS if raw.get(f)), None) or "stand-in"
    return {"kind": STAND_IN_KIND, "schema": schema_name, "subject_category": "legal_entity",
            "ids": {"uscc": subject}, "doc_no": raw.get("doc_no")}


def stand_in_step(before: dict | None, event: Any, rules: Any = None, calendar: Any = None):
    """In place of domain/engine.py ``step``: the subject's id and a count of its inputs; outcome
    ``new`` (so the benchmark's progress counter, the inputs applied, moves as it does for the real
    rules), no list change, no link, no timeliness; no record part touched."""
    from domain.engine import Step

    n = (before or {}).get("n", 0) + 1
    return Step({"id": event.subject, "id_kind": getattr(event, "id_kind", None) or "uscc", "n": n}, "new", [], [],
                (), frozenset())


def install(level: str) -> None:
    """Put the stand-ins of ``level`` in place (agents' module names only: the rules core itself is
    not touched, so this process's other users of it are not affected)."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    import agents.ingest
    import agents.subject

    agents.subject.step = stand_in_step  # type: ignore[assignment]
    if level == "domain":
        agents.ingest.normalise_event = stand_in_record  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in LEVELS:
        print(f"usage: python -m bench.ceiling {{{','.join(LEVELS)}}} worker [worker options]\n\n"
              + (__doc__ or "").split("\n\n")[0], file=sys.stderr)
        return 2
    install(args[0])
    from creditstream.cli import main as cli_main

    return cli_main(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
