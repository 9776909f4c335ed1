"""When a SUBMIT_JOB_SCHED job becomes runnable (cron-like fields)."""

from __future__ import annotations

import datetime

__all__ = ["parse_field", "next_run"]

_LIMITS = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12), "weekday": (0, 6)}


def parse_field(kind: str, raw: bytes) -> int | None:
    """Return the field value, or None for "any" (empty or ``*``).

    Raises ValueError for text that is not a number in range.
    """
    text = raw.strip()
    if text in (b"", b"*"):
        return None
    value = int(text)
    low, high = _LIMITS[kind]
    if not low <= value <= high:
        raise ValueError(f"{kind} {value} is out of range {low}-{high}")
    return value


def next_run(
    minute: int | None,
    hour: int | None,
    day: int | None,
    month: int | None,
    weekday: int | None,
    now: datetime.datetime | None = None,
) -> float | None:
    """Return the Unix time of the next local time matching every given field.

    ``weekday`` counts from Sunday = 0 as cron does. None means no matching
    time exists in the next eight years (for example 31 February).
    """
    now = (now or datetime.datetime.now()).replace(second=0, microsecond=0)
    start = now
    date = start.date()
    for _ in range(8 * 366):
        if (
            (month is None or date.month == month)
            and (day is None or date.day == day)
            and (weekday is None or (date.weekday() + 1) % 7 == weekday)
        ):
            hours = range(24) if hour is None else (hour,)
            minutes = range(60) if minute is None else (minute,)
            for h in hours:
                for m in minutes:
                    candidate = datetime.datetime.combine(date, datetime.time(h, m))
                    if candidate >= start:
                        return candidate.timestamp()
        date += datetime.timedelta(days=1)
    return None
