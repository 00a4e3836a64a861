"""The digest the rules core names things with: 16 bytes of BLAKE2b, as 32 hex characters.

A record version's content hash (domain/validate.py ``content_hash``), a list change's id
(domain/facts.py ``change_id``) and a withdrawal's id (domain/engine.py ``announce``) are all
``hashlib.blake2b(data, digest_size=16).hexdigest()``: they are stored in every state and sent to
subscribers, so they never change. Made here from one hash object set up once and copied for each
digest: the same bytes, without parsing ``digest_size`` and setting the parameters on every call
(from the compiled core, ~25% of an id's cost; docs/performance.md, twenty-eighth session)."""

from __future__ import annotations

import hashlib
from typing import Final

_BLAKE2B_16: Final = hashlib.blake2b(digest_size=16)


def hex16(data: bytes) -> str:
    """``hashlib.blake2b(data, digest_size=16).hexdigest()``."""
    h = _BLAKE2B_16.copy()
    h.update(data)
    return h.hexdigest()
