"""Strict checks of a schedule: a five-field cron expression and an IANA time zone name.

Only checking is needed here: Temporal Schedules interpret the cron string when the runner
registers it, so this accepts the common subset both agree on and refuses the rest at load
time. Each field is a list of `*`, `N`, `N-M`, each optionally `/STEP`; months and weekdays
may be names (`JAN`, `MON`); weekday 0 and 7 are Sunday. Macros: `@hourly`, `@daily`, ...
"""

from __future__ import annotations

import zoneinfo

__all__ = ["MACROS", "check_cron", "check_time_zone"]

MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest, names for lowest..)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def check_cron(text: str) -> str:
    """`text` when it is a valid schedule; `ValueError` naming the bad field otherwise."""
    spec = text.strip()
    if spec.startswith("@"):
        if spec.lower() not in MACROS:
            raise ValueError(f"unknown cron macro {spec!r} (known: {', '.join(sorted(MACROS))})")
        return spec
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(
            f"cron {spec!r} has {len(fields)} fields; it needs 5: minute hour day-of-month month day-of-week"
        )
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for item in value.split(","):
            _check_item(item, name, low, high, names)
    return spec


def _check_item(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> None:
    span, slash, step = item.partition("/")
    if slash and not (step.isascii() and step.isdigit() and 1 <= int(step) <= high):
        raise ValueError(f"cron {name}: bad step {step!r} in {item!r}")
    if span == "*":
        return
    first, dash, last = span.partition("-")
    start = _value(first, name, low, high, names)
    if dash:
        end = _value(last, name, low, high, names)
        if end < start:
            raise ValueError(f"cron {name}: range {span!r} runs backwards")
    elif slash:
        raise ValueError(f"cron {name}: a step needs '*' or a range before it, not {span!r}")


def _value(word: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if word.upper() in names:
        return names.index(word.upper()) + low
    if not (word.isascii() and word.isdigit() and len(word) <= 2):
        raise ValueError(f"cron {name}: {word!r} is not a number{' or a name' if names else ''}")
    number = int(word)
    if not low <= number <= high:
        raise ValueError(f"cron {name}: {number} is outside {low}..{high}")
    return number


def check_time_zone(name: str) -> str:
    """`name` when it is an IANA time zone (`Europe/Berlin`, `UTC`); `ValueError` otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from exc
    return name
