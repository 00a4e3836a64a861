"""Type names shared by the rules core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Doc = dict[str, Any]
"""A JSON object as the state keeps it: a record's content, a change, a view, a fact."""

View = Mapping[str, Any]
"""A JSON object only read (a subject's record entry, a typed state read as plain data)."""
