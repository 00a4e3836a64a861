"""Kafka-facing plumbing: topics, codecs, the agents' runner.

streams/avro_reader.py, streams/avro_writer.py and streams/murmur2.py are compiled with the rules core
(ops/build_core.py ``ALSO_COMPILED``): they run compiled exactly when domain/ does
(domain/__init__.py ``COMPILED``).
"""

from __future__ import annotations

import domain as _domain

if _domain.COMPILED and _domain._build is not None:
    __path__.insert(0, str(_domain._build / "streams"))  # noqa: F821 - the package's own search path
