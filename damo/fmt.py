"""Human-friendly numbers as damo prints them: sizes, times, comma-grouped integers.

Every function takes ``machine_friendly``; when true the value is printed as a plain
integer, which is what damo's ``--raw_number`` does.

damo computes sizes and times with Python floats, so values here are converted to
float in the same places; that keeps rounding (and the rare float artefact) identical
to damo's output, which the compatibility tests compare byte for byte.
"""
from __future__ import annotations

import numpy as np

ULONG_MAX = 2**64 - 1

NS = 1
US = 1000 * NS
MS = 1000 * US
SEC = 1000 * MS
MINUTE = 60 * SEC
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# Largest unit first; a size is printed in a unit only when strictly larger than it.
SIZE_UNITS = ((1 << 60, "EiB"), (1 << 50, "PiB"), (1 << 40, "TiB"),
              (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))

# Units of the "exact" time format, largest first.
EXACT_TIME_UNITS = ((DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SEC, "s"), (MS, "ms"), (US, "us"), (NS, "ns"))


def format_nr(nr: int | float, machine_friendly: bool = False) -> str:
    """An integer with thousands separators (``1,234,567``); fractions are truncated."""
    if nr < 0:
        magnitude = int(-nr)
        return "-" + (str(magnitude) if machine_friendly else f"{magnitude:,}")
    return str(int(nr)) if machine_friendly else f"{int(nr):,}"


def _format_sz(sz_bytes: int | float, machine_friendly: bool, unit_format: str) -> str:
    if machine_friendly:
        return "%d" % sz_bytes
    value = float(sz_bytes)
    if value == float(ULONG_MAX):
        return "max"
    for unit_bytes, unit in SIZE_UNITS:
        if value > unit_bytes:
            return unit_format % (value / unit_bytes, unit)
    return "%d B" % value


def format_sz(sz_bytes: int | float, machine_friendly: bool = False) -> str:
    """A byte count: ``3.949 MiB`` (three decimals, binary units, strict thresholds) or ``512 B``."""
    return _format_sz(sz_bytes, machine_friendly, "%.3f %s")


def format_addr_range(start: int, end: int, machine_friendly: bool = False) -> str:
    """``[start, end) (size)`` with grouped addresses."""
    return "[%s, %s) (%s)" % (format_nr(start, machine_friendly), format_nr(end, machine_friendly),
                              format_sz(end - start, machine_friendly))


def format_time_ns(time_ns: int | float, machine_friendly: bool = False) -> str:
    """A duration: ``1 h 2 m 3.500 s``, ``59.809 s``, ``104.599 ms``, ``2 s``, ``17 ns``.

    Whole hours are split off first; below an hour the value is printed in the largest
    unit it reaches, with three decimals unless it is an exact multiple of that unit.
    """
    if machine_friendly:
        return "%d" % time_ns
    t = float(time_ns)
    if t >= ULONG_MAX:
        return "max"
    if t >= HOUR:
        hours = int(t / HOUR)
        rest = t - hours * HOUR
        if rest == 0:
            return "%d h" % hours
        return "%d h %s" % (hours, format_time_ns(rest))
    if t >= MINUTE:
        if t % MINUTE == 0:
            return "%d m" % (t / MINUTE)
        if t % SEC == 0:
            return "%d m %d s" % (t / MINUTE, (t % MINUTE) / SEC)
        return "%d m %.3f s" % (t / MINUTE, (t % MINUTE) / SEC)
    for unit_ns, unit in ((SEC, "s"), (MS, "ms"), (US, "us")):
        if t >= unit_ns:
            if t % unit_ns == 0:
                return "%d %s" % (t / unit_ns, unit)
            return "%.3f %s" % (t / unit_ns, unit)
    return "%d ns" % t


def format_time_ns_signed(time_ns: int | float, machine_friendly: bool = False) -> str:
    """damo 3.x's duration: like ``format_time_ns``, with a leading ``-`` for negative times."""
    if machine_friendly:
        return "%d" % time_ns
    t = float(time_ns)
    return ("-" + format_time_ns(-t)) if t < 0 else format_time_ns(t)


def format_sz_accurate(sz_bytes: int | float, machine_friendly: bool = False) -> str:
    """damo 3.x's exact-looking size: ``85.332031 TiB`` (six decimals), or ``512 B``."""
    return _format_sz(sz_bytes, machine_friendly, "%f %s")


def format_time_us(time_us: int | float, machine_friendly: bool = False) -> str:
    return "%d" % time_us if machine_friendly else format_time_ns(time_us * US)


def format_time_ms(time_ms: int | float, machine_friendly: bool = False) -> str:
    return "%d" % time_ms if machine_friendly else format_time_ns(time_ms * MS)


def format_time_sec(time_sec: int | float, machine_friendly: bool = False) -> str:
    return "%d" % time_sec if machine_friendly else format_time_ns(time_sec * SEC)


def format_time_ns_min_unit(time_ns: int, min_unit: int, machine_friendly: bool = False) -> str:
    """A duration spelled out unit by unit (``1 d 2 h 3 s``) down to ``min_unit``.

    The smallest unit may carry three decimals when the value is not a multiple of it.
    """
    if machine_friendly:
        return "%d" % time_ns
    if time_ns >= ULONG_MAX:
        return "max"
    for unit_ns, unit in EXACT_TIME_UNITS:
        if time_ns < unit_ns:
            continue
        if unit_ns == min_unit:
            if time_ns % unit_ns:
                return "%.3f %s" % (time_ns / unit_ns, unit)
            return "%d %s" % (time_ns / unit_ns, unit)
        count = int(time_ns / unit_ns)
        head = "%s %s" % (format_nr(count), unit)
        rest = time_ns - count * unit_ns
        if rest == 0:
            return head
        return "%s %s" % (head, format_time_ns_min_unit(rest, min_unit))
    return "0 ns"


def format_time_ns_exact(time_ns: int, machine_friendly: bool = False) -> str:
    return format_time_ns_min_unit(time_ns, NS, machine_friendly)


def format_time_us_exact(time_us: int, machine_friendly: bool = False) -> str:
    return format_time_ns_exact(time_us * US, machine_friendly)


def format_ratio(ratio: float, machine_friendly: bool = False) -> str:
    """A ratio as a percentage with up to seven decimals and no trailing zeros (``12.5 %``)."""
    if machine_friendly:
        return "%f" % ratio
    whole = format_nr(int(ratio * 100))
    fraction = ("%.7f" % (ratio * 100 % 1)).rstrip("0")[2:]
    return "%s.%s %%" % (whole, fraction) if fraction else "%s %%" % whole


def format_permil(permil: float, machine_friendly: bool = False) -> str:
    return "%f" % permil if machine_friendly else format_ratio(float(permil) / 1000)


def format_bp(bp: float, machine_friendly: bool = False) -> str:
    """Basis points (1/10,000) as a percentage."""
    return "%f" % bp if machine_friendly else format_ratio(float(bp) / 10000)


def indent_lines(text: str, width: int) -> str:
    return "\n".join(" " * width + line for line in text.split("\n"))


def format_percent(percent: float, machine_friendly: bool = False) -> str:
    return "%f" % percent if machine_friendly else format_ratio(float(percent) / 100)


# --- many values at once -------------------------------------------------------------------

def format_sz_many(sizes, machine_friendly: bool = False) -> list[str]:
    """format_sz over a whole column."""
    sizes = np.asarray(sizes)
    if machine_friendly:
        return [str(int(s)) for s in sizes.tolist()]
    return [format_sz(s) for s in sizes.tolist()]
