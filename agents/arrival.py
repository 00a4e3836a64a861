"""What every department message is named and checked by on arrival, whichever agent reads it: its
origin (where it is in the log) and whether its timestamp can stand for its arrival (RULES.md 3a)."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from domain import clock


def origin_of(msg: ConsumerRecord) -> str:
    """The id of a department message: where it is in the log. Stable across redelivery and replay."""
    return f"{msg.topic}/{msg.partition}/{msg.offset}"


def future_stamp(msg: ConsumerRecord, now_ms: int) -> str | None:
    """Why a message's timestamp cannot be its arrival time (None: it can). A stamp in the future
    of the wall clock would move a subject's clock there for good (RULES.md 3a)."""
    if msg.timestamp is None or msg.timestamp < 0:
        return "the message has no timestamp"
    if clock.is_future_ms(msg.timestamp, now_ms):
        return (f"message timestamp {clock.date_of_ms(msg.timestamp)} ({msg.timestamp} ms) is after the wall clock "
                f"({clock.date_of_ms(now_ms)}) + {clock.FUTURE_TOLERANCE_MS // 1000} s")
    if clock.date_of_ms(msg.timestamp) > clock.date_of_ms(now_ms):
        # within the tolerance, but on tomorrow's China date: it would date the subject's clock, and a
        # decision it lets pass, tomorrow (RULES.md 3a: nothing dated in the future of the wall clock)
        return (f"message timestamp {msg.timestamp} ms falls on {clock.date_of_ms(msg.timestamp)} (China time), "
                f"after the wall clock's date {clock.date_of_ms(now_ms)}: a clock ahead of it by minutes")
    return None
