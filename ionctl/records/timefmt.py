"""Times as people at the clinic read them: the clinic's local time zone, and session elapsed time.

Everything stored (records, events, audit entries, JSON exports) stays ISO 8601 UTC with its offset; only what
a person reads is converted here. The clinic's zone is the site configuration's `time_zone` (an IANA name such
as "Europe/Berlin", checked with `zoneinfo`), set once by the front end (`use_zone`), else the machine's own
zone (the TZ environment variable, else /etc/localtime). Times within a session are shown as elapsed time
from its start (`elapsed`, m:ss), not as a device's uptime.

Standard library only, no clock reads except `now()` for `today` and `yesterday`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

#: The forms `parse_since` accepts, as said to a user who gave something else.
SINCE_FORMS = ("YYYY-MM-DD (local midnight), YYYY-MM-DDTHH:MM[:SS] (local time), the same with an offset "
               "(e.g. 2026-03-12T08:00+01:00 or Z), today, yesterday")  # fmt: skip

_zone: tzinfo | None = None  # None: the machine's zone
_zone_name: str | None = None


def zone_named(name: str) -> tzinfo:
    """The IANA zone `name`; ValueError naming it if there is none (or no tz database)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a time zone is an IANA name such as Europe/Berlin, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone (e.g. Europe/Berlin, America/New_York, UTC): "
                         f"{exc}") from None  # fmt: skip


def use_zone(name: str | None) -> None:
    """Show times in the zone `name` (the site's `time_zone`), or in the machine's zone when None."""
    global _zone, _zone_name
    _zone, _zone_name = (zone_named(name), name) if name else (None, None)


def zone_label() -> str:
    """The zone times are shown in, for a column header: the site's name, or the machine's abbreviation."""
    return _zone_name or (datetime.now().astimezone().tzname() or "local")


def local(moment: datetime | str) -> datetime:
    """An aware datetime (or an ISO 8601 text; naive means UTC, as the store writes) in the clinic's zone."""
    dt = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(_zone) if _zone is not None else dt.astimezone()


def local_text(moment: datetime | str | None, *, seconds: bool = True, missing: str = "-") -> str:
    """`2026-03-12 14:03:05 CET`: a stored time as the clinic reads it (`missing` for None or unreadable)."""
    if moment is None or moment == "":
        return missing
    try:
        dt = local(moment)
    except (TypeError, ValueError):
        return str(moment)
    return f"{dt:%Y-%m-%d %H:%M{':%S' if seconds else ''}} {dt.tzname() or dt.strftime('%z')}"


def elapsed(seconds: float | None) -> str:
    """Session elapsed time: `m:ss` (minutes not capped at 60), `--:--` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    whole = round(seconds)
    sign, whole = ("-", -whole) if whole < 0 else ("", whole)
    return f"{sign}{whole // 60:d}:{whole % 60:02d}"


def now() -> datetime:
    return datetime.now(UTC)


def parse_since(text: str, *, today: date | None = None) -> datetime:
    """The moment `--since TEXT` means, as an aware UTC datetime. Dates and naive times are the clinic's local
    time; `today` and `yesterday` are local midnights. ValueError naming the value and the accepted forms."""
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        day = today if today is not None else local(now()).date()
        return _local_midnight(day - timedelta(days=1 if word == "yesterday" else 0))
    try:
        value = datetime.fromisoformat(text.strip())  # a date alone is its midnight
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date or time; accepted: {SINCE_FORMS}") from None
    return _as_local(value).astimezone(UTC) if value.tzinfo is None else value.astimezone(UTC)


def _local_midnight(day: date) -> datetime:
    return _as_local(datetime.combine(day, time())).astimezone(UTC)


def _as_local(naive: datetime) -> datetime:
    """A naive wall-clock time in the clinic's zone, made aware (the machine's rules when no zone is set)."""
    return naive.replace(tzinfo=_zone) if _zone is not None else naive.astimezone()


def session_start_s(events: Sequence[Mapping[str, Any]], telemetry: Sequence[Mapping[str, Any]] = ()) -> float | None:
    """The device time a record's session started at (the earliest of its first sample and its first event with a
    device time; the events before the output started carry none): the origin of its elapsed times. None when it
    noted no device time."""
    first_event = next((float(e["device_t_s"]) for e in events if e.get("device_t_s") is not None), None)
    first_sample = float(telemetry[0]["t_s"]) if telemetry else None
    known = [t for t in (first_event, first_sample) if t is not None]
    return min(known) if known else None


def since_start(start_s: float | None, t_s: float | None) -> str:
    """`elapsed` of device time `t_s` from `start_s`; `--:--` when either is unknown or the device clock went
    back (a reboot restarts it)."""
    if start_s is None or t_s is None or t_s < start_s:
        return "--:--"
    return elapsed(t_s - start_s)
