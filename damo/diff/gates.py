"""The ``--fail-if`` gate language of ``damo report diff``.

A gate is ``METRIC OP [+|-]NUMBER[UNIT]``:

- METRIC is one of ``damo.diff.METRIC_UNITS`` (``wss.p50``, ``hot_bytes``, ``nr_regions.avg``, ...);
- OP is ``>``, ``>=``, ``<`` or ``<=``; the change (new mean - base mean) is compared with the number;
- the number is a change in percent of the base mean (``%``), or absolute, in the metric's unit:
  ``B KiB MiB GiB TiB`` (or ``K M G T``) for bytes, ``ns us ms s`` for seconds, none for counts.

A gate trips when the change passes the threshold by more than the noise margin:
``>``: change > T + k*SE; ``<``: change < T - k*SE, where SE is the standard error of the
difference of the means (``damo.diff.difference_noise``) and k is ``--noise-k``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from damo.diff.analysis import METRIC_UNITS, MetricChange
from damo.errors import DamoError
from damo.fmt import format_sz

SIZE_UNITS = {"b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
              "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
UNITS = {"bytes": SIZE_UNITS, "seconds": TIME_UNITS, "count": {}}

SYNTAX = ("METRIC OP [+|-]NUMBER[%|UNIT] with OP one of > >= < <= and UNIT B/KiB/MiB/GiB/TiB "
          "(sizes) or ns/us/ms/s (duration), e.g. 'wss.p50>+10%', 'wss.p100>+64MiB', 'hot_bytes<-5%', "
          "'nr_regions.avg>+100'")

_GATE_RE = re.compile(r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>>=|<=|>|<)\s*"
                      r"(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|[A-Za-z]+)?\s*$")


@dataclass(frozen=True)
class Gate:
    text: str
    metric: str
    op: str                 # > >= < <=
    value: float            # signed, in percent or in the metric's base unit (bytes, seconds, count)
    percent: bool

    def threshold(self, change: MetricChange) -> float:
        """The threshold as an absolute change of the metric."""
        return self.value / 100.0 * abs(change.base.mean) if self.percent else self.value


def _bad(text: str, why: str) -> DamoError:
    return DamoError(f"bad --fail-if '{text}': {why}; expected {SYNTAX}")


def parse_gate(text: str) -> Gate:
    """Parse one ``--fail-if`` expression; raise DamoError showing the accepted syntax."""
    m = _GATE_RE.match(text)
    if not m:
        raise _bad(text, "not a gate expression")
    metric = m.group("metric")
    if metric not in METRIC_UNITS:
        raise DamoError(f"bad --fail-if '{text}': unknown metric '{metric}'; metrics: "
                        f"{' '.join(METRIC_UNITS)}")
    value = float(m.group("num")) * (-1 if m.group("sign") == "-" else 1)
    unit = m.group("unit")
    if unit == "%":
        return Gate(text, metric, m.group("op"), value, True)
    kind = METRIC_UNITS[metric]
    if unit is not None:
        factors = UNITS[kind]
        if unit.lower() not in factors:
            allowed = "none (a count)" if not factors else "% or " + "/".join(
                u for u in factors if u not in ("k", "m", "g", "t"))
            raise _bad(text, f"unit '{unit}' does not fit {metric} ({kind}); use {allowed}")
        value *= factors[unit.lower()]
    return Gate(text, metric, m.group("op"), value, False)


@dataclass
class GateResult:
    gate: Gate
    change: MetricChange
    threshold: float        # absolute change the gate allows
    margin: float           # k * SE added beyond the threshold
    tripped: bool

    def line(self) -> str:
        """One line saying what tripped (or passed) and why."""
        c = self.change
        fmt = _formatter(c.unit)
        pct = "n/a" if c.delta_pct is None else f"{c.delta_pct:+.2f}%"
        state = "FAIL" if self.tripped else "pass"
        noise = f", noise margin {fmt(self.margin)}" if self.margin else ""
        return (f"{state} {self.gate.text}: {c.name} {fmt(c.base.mean)} -> {fmt(c.new.mean)} "
                f"(change {_signed(fmt, c.delta)}, {pct}; threshold {_signed(fmt, self.threshold)}{noise})")


def _formatter(unit: str):
    if unit == "bytes":
        return lambda v: format_sz(abs(v)) if v >= 0 else "-" + format_sz(-v)
    if unit == "seconds":
        return lambda v: f"{v:.3f} s"
    return lambda v: f"{v:g}"


def _signed(fmt, v: float) -> str:
    text = fmt(v)
    return text if text.startswith("-") else "+" + text


def evaluate(gate: Gate, change: MetricChange, noise_k: float) -> GateResult:
    """Whether ``change`` trips ``gate``: past the threshold by more than ``noise_k`` standard errors."""
    threshold = gate.threshold(change)
    margin = noise_k * change.noise
    d = change.delta
    tripped = {">": d > threshold + margin, ">=": d >= threshold + margin,
               "<": d < threshold - margin, "<=": d <= threshold - margin}[gate.op]
    return GateResult(gate, change, threshold, margin, bool(tripped))


def evaluate_all(gates: list[Gate], metrics: dict[str, MetricChange], noise_k: float) -> list[GateResult]:
    return [evaluate(g, metrics[g.metric], noise_k) for g in gates]
