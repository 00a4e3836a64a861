"""Dead letters for operators: list them with their reason and source (``creditstream dlq``)."""

from __future__ import annotations

from creditstream.settings import Settings
from sinks.deadletter import dead_letter_info
from streams import kafka
from streams.topics import Topics


async def list_dead_letters(settings: Settings, *, reason: str | None = None,
                            source_topic: str | None = None) -> list[dict]:
    """Every dead letter on the dead-letter topic (read to its end), optionally filtered."""
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).dead_letters):
        for msg in batch:
            info = dead_letter_info(msg.headers)
            if reason and info.get("reason") != reason:
                continue
            if source_topic and info.get("source.topic") != source_topic:
                continue
            out.append({
                "partition": msg.partition,
                "offset": msg.offset,
                "reason": info.get("reason", ""),
                "detail": info.get("detail", ""),
                "agent": info.get("agent", ""),
                "source_topic": info.get("source.topic", ""),
                "source_partition": int(info.get("source.partition", -1)),
                "source_offset": int(info.get("source.offset", -1)),
                "source_timestamp": int(info.get("source.timestamp", 0) or 0),
                "dead_lettered_at": int(info.get("at", 0) or 0),
                "size": len(msg.value or b""),
            })
    out.sort(key=lambda d: (d["dead_lettered_at"], d["partition"], d["offset"]))
    return out
