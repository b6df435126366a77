"""Reliability harness: reader fuzzing, decompression bombs and signal storms over records.

The same code runs in the default test suite (tests/robustness/, a few seeded cases each) and
as a longer run that fills the table in docs/reliability.md::

    nice python -m bench.robustness --minutes 20 [--seed 1] [--markdown docs/reliability-run.md]

Each part counts runs, clean exits, tracebacks, hangs, peak memory and snapshots lost or
duplicated. A "clean exit" is exit 0 or a one-line ``damo: error:`` with exit 2 (readers), or the
expected status after a signal (records).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "masim" / "configs" / "zigzag_30secs.cfg"
STORM_ARGS = ["-s", "1000", "-a", "10000"]          # thousands of snapshots: a record of several seconds
FORMATS = ("native", "json_compressed", "json", "perf_script")
HANG_SECONDS = 120
MEMORY_LIMIT_MIB = 512


@dataclass
class Tally:
    """Outcomes of one part of the harness."""

    runs: int = 0
    clean: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hangs: int = 0
    peak_mib: float = 0.0
    lost: int = 0           # snapshots the closing message or a flush promised that did not read back
    duplicated: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.runs += other.runs
        self.clean += other.clean
        self.tracebacks += other.tracebacks
        self.hangs += other.hangs
        self.peak_mib = max(self.peak_mib, other.peak_mib)
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.failures += other.failures

    def ok(self) -> bool:
        return not (self.tracebacks or self.hangs or self.lost or self.duplicated or self.failures)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")


def run_damo(args: list[str], timeout: float = HANG_SECONDS) -> tuple[int | None, str, float]:
    """Run ``python -m damo ARGS``: (exit code or None on a hang, stderr, peak RSS in MiB)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "damo", *args], stdout=subprocess.DEVNULL, stderr=err,
                                env=_env(), cwd=REPO)
        code, peak = _wait(proc, timeout)
        err.seek(0)
        return code, err.read().decode(errors="replace"), peak


def _hwm_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Wait for ``proc`` (kill it after ``timeout``): its exit code (None if it hung) and peak RSS.

    The peak is polled from VmHWM, which belongs to the program after its exec; the child's
    ru_maxrss would also count this (possibly large) parent's memory from before the exec.
    """
    deadline = time.monotonic() + timeout
    peak = 0.0
    while True:
        peak = max(peak, _hwm_mib(proc.pid))
        try:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:       # Popen.poll() (send_signal calls it) reaped it already
            return proc.returncode, peak
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
        if time.monotonic() > deadline:
            proc.kill()
            _, status, _ = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return None, peak
        time.sleep(0.01)


# --- seed records ----------------------------------------------------------------------------

def seed_record(seed: int = 0, nr_snapshots: int = 20, nr_regions: int = 12):
    """A small DAMON-like record with kernel and high addresses among the ordinary ones."""
    from damo.model import RecordBuilder, RecordMeta

    rng = np.random.default_rng(seed)
    meta = RecordMeta(target_kind="vaddr", target="fuzz", sample_us=5000, aggr_us=100000, update_us=1000000,
                      min_nr_regions=10, max_nr_regions=1000, start_time=1.7e9, tool_version="fuzz")
    builder = RecordBuilder(meta)
    bases = [0x55DE78704000, 0xFFFF888000000000, (1 << 64) - (1 << 24)]
    for t in range(nr_snapshots):
        base = bases[t % len(bases)]
        bounds = np.sort(rng.choice(np.arange(1, 4000), nr_regions - 1, replace=False))
        addrs = (np.concatenate([[0], bounds, [4000]]) * 4096).astype(np.uint64) + np.uint64(base)
        builder.add(t % 2, t * 10**8, (t + 1) * 10**8, addrs[:-1], addrs[1:], rng.integers(0, 20, nr_regions),
                    rng.integers(0, 50, nr_regions))
    return builder.build()


def seed_files(directory: Path) -> dict[str, bytes]:
    """The seed record in every format, as bytes."""
    from damo.formats import write_record

    record = seed_record()
    out = {}
    for fmt in FORMATS:
        path = directory / f"seed.{fmt}"
        write_record(record, path, fmt)
        out[fmt] = path.read_bytes()
    return out


# --- reader fuzzing --------------------------------------------------------------------------

def _text_mutation(text: bytes, rng: random.Random) -> bytes:
    """Replace one number in ``text`` by something hostile."""
    numbers = [i for i, c in enumerate(text) if 48 <= c <= 57]
    if not numbers:
        return text
    pos = rng.choice(numbers)
    end = pos
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    hostile = rng.choice([b"18446744073709551615", b"18446744073709551616", b"-1", b"-9223372036854775809",
                          b"NaN", b"Infinity", b"1e308", b"1e400", b"99999999999999999999999999999",
                          b"0", b"", b"7 7", b"\"x\"", b"null", b"[]", b"{}"])
    return text[:pos] + hostile + text[end:]


def mutate(data: bytes, fmt: str, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of a record file: (its kind, the new bytes)."""
    kind = rng.choice(["truncate", "flip", "insert", "number", "nesting", "repeat"])
    if kind == "truncate":
        return kind, data[:rng.randrange(len(data) + 1)]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return kind, bytes(out)
    if kind == "insert":
        pos = rng.randrange(len(data) + 1)
        return kind, data[:pos] + rng.randbytes(rng.randint(1, 64)) + data[pos:]
    if kind == "repeat":
        lo = rng.randrange(len(data))
        hi = min(len(data), lo + rng.randint(1, 4096))
        return kind, data[:hi] + data[lo:hi] * rng.randint(1, 50) + data[hi:]
    text = zlib.decompress(data) if fmt == "json_compressed" else data
    if kind == "number" and fmt != "native":
        text = _text_mutation(text, rng)
    elif kind == "nesting" and fmt in ("json", "json_compressed"):
        depth = rng.choice([100, 10_000, 200_000])
        pos = text.find(b'"regions":')
        text = text[:pos + 10] + b"[" * depth + b"]" * depth + b"," + text[pos + 10:] if pos >= 0 else b"[" * depth
    else:
        return "flip", mutate(data, fmt, random.Random(rng.random()))[1]
    return kind, zlib.compress(text) if fmt == "json_compressed" else text


def fuzz_readers(nr_cases: int, seed: int, directory: Path) -> Tally:
    """Read ``nr_cases`` mutated files in this process; anything but a record or a DamoError naming
    the file is a traceback. (Run it in a child process to measure peak memory: see ``main``.)"""
    import traceback

    from damo.errors import DamoError
    from damo.formats import read_record

    rng = random.Random(seed)
    seeds = seed_files(directory)
    tally = Tally()
    path = directory / "case"
    for i in range(nr_cases):
        fmt = FORMATS[i % len(FORMATS)]
        kind, data = mutate(seeds[fmt], fmt, rng)
        path.write_bytes(data)
        tally.runs += 1
        try:
            record = read_record(path)
            record.validate_shape()
            tally.clean += 1
        except DamoError as err:
            if str(path) in str(err) and "\n" not in str(err):
                tally.clean += 1
            else:
                tally.failures.append(f"{fmt}/{kind} seed {seed} case {i}: unnamed or multi-line error: {err}")
        except Exception:       # noqa: BLE001 - this is what the harness looks for
            tally.tracebacks.append(f"{fmt}/{kind} seed {seed} case {i}: "
                                    + traceback.format_exc().strip().splitlines()[-1])
    return tally


# --- decompression bombs ---------------------------------------------------------------------

def _native_header() -> bytes:
    from damo.formats import native
    from damo.model import RecordMeta

    blob = json.dumps(RecordMeta(tool_version="bomb").to_dict()).encode()
    return native.HEADER.pack(native.MAGIC, native.VERSION, 0, len(blob)) + blob


def _native_chunk(raw: bytes, nr_snaps: int, nr_regions: int, raw_len: int | None = None) -> bytes:
    from damo.formats import native

    packed = zlib.compress(raw, 9)      # what a version 2 file holds
    return native.CHUNK.pack(native.CHUNK_TAG, nr_snaps, nr_regions, len(raw) if raw_len is None else raw_len,
                             len(packed), zlib.crc32(packed)) + packed


def _zlib_bomb(head: bytes, item: bytes, tail: bytes, scale: int) -> bytes:
    """A zlib stream of ``head``, 256 MiB x ``scale`` of ``item`` repeated, and ``tail``.

    After a full flush deflate starts afresh, so one compressed block can be repeated as is.
    """
    compressor = zlib.compressobj(9)
    out = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(item * ((4 << 20) // len(item))) + compressor.flush(zlib.Z_FULL_FLUSH)
    return out + block * (64 * scale) + compressor.compress(tail) + compressor.flush()


def bombs(directory: Path, scale: int = 1) -> dict[str, Path]:
    """Small files that claim or inflate to far more than they hold. ``scale`` multiplies their size."""
    out = {}

    def put(name: str, data: bytes) -> None:
        out[name] = directory / name
        out[name].write_bytes(data)

    # A chunk header claiming 4 GiB of payload and 2^32 - 1 regions.
    put("native_4gib_claim", _native_header() + _native_chunk(bytes(64 << 20), 1, 2**32 - 1, raw_len=2**32 - 1))
    # Chunks at the format's limits whose payload is zeros (plain coding is any bytes).
    chunk = _native_chunk(bytes(40 << 20), 1 << 16, 1 << 20)
    put("native_zero_chunks", _native_header() + chunk * (3 * scale))
    del chunk
    region = (b'\n{"start": "1", "end": "2", "nr_accesses": {"samples": 1, "percent": null}, '
              b'"age": {"usec": null, "aggr_intervals": "1"}, "sz_filter_passed": "0 B"},')
    head = (b'[{"kdamond_idx": 0, "context_idx": 0, "intervals": {"sample_us": 5000, "aggr_us": 100000, '
            b'"ops_update_us": 1000000}, "scheme_idx": null, "target_id": 0, "scheme_filters": [], '
            b'"snapshots": [{"start_time": "0", "end_time": "1", "regions": [')
    put("json_compressed_one_huge_snapshot", _zlib_bomb(head, region, region[:-1] + b"]}]}]", scale))
    compact = b'{"start":1,"end":2,"nr_accesses":{"samples":1}}'
    put("json_compressed_general_layout", _zlib_bomb(b'[{"snapshots": [{"start_time": 0, "end_time": 1, "regions": [',
                                                     compact + b",", compact + b"]}]}]", scale))
    put("json_deep_nesting", b"[" * 5_000_000 + b"]" * 5_000_000)
    return out


def run_bombs(directory: Path, scale: int = 1) -> Tally:
    """``damo validate`` on each bomb: exit 2 with one line, peak memory within the limit."""
    tally = Tally()
    for name, path in bombs(directory, scale).items():
        code, err, peak = run_damo(["validate", "-i", str(path)])
        tally.runs += 1
        tally.peak_mib = max(tally.peak_mib, peak)
        if code is None:
            tally.hangs += 1
        elif "Traceback" in err:
            tally.tracebacks.append(f"bomb {name}: {err.strip().splitlines()[-1]}")
        elif code != 2 or err.count("\n") != 1 or peak > MEMORY_LIMIT_MIB:
            tally.failures.append(f"bomb {name}: exit {code}, {peak:.0f} MiB: {err.strip()}")
        else:
            tally.clean += 1
    return tally


# --- signal storms ---------------------------------------------------------------------------

_REFERENCE: dict[str, object] = {}


def reference_record(fmt: str, directory: Path):
    """The uninterrupted record the storms are compared with: the simulator is deterministic, so
    it is simulated in this process and passed through ``fmt`` once."""
    if fmt not in _REFERENCE:
        from damo.cli import build_parser
        from damo.formats import read_record, write_record
        from damo.record import request_from_args
        from damo.sources import sim

        args = build_parser().parse_args(["record", str(CONFIG), *STORM_ARGS, "-o", "unused"])
        record, _ = sim.simulate(request_from_args(args))
        path = directory / f"reference.{fmt}"
        write_record(record, path, fmt)
        _REFERENCE[fmt] = read_record(path)
    return _REFERENCE[fmt]


def _columns_equal(got, want) -> bool:
    """Same regions, target ids and end times (perf_script keeps no start times)."""
    return all(np.array_equal(getattr(got, c), getattr(want, c))
               for c in ("target_id", "end_ns", "offsets", "start", "end", "nr_accesses", "age"))


def storm_once(fmt: str, signum: int, delay: float, directory: Path, tag: str = "",
               from_launch: bool = False) -> Tally:
    """Record, send ``signum`` after ``delay`` seconds, and check what the file holds."""
    from damo.errors import DamoError
    from damo.formats import read_record

    tally = Tally(runs=1)
    out = directory / f"storm{tag}.data"
    for stale in (out, Path(f"{out}.partial"), Path(f"{out}.old"), Path(f"{out}.partial.old")):
        stale.unlink(missing_ok=True)
    name = signal.Signals(signum).name
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "damo", "record", str(CONFIG), *STORM_ARGS,
                                 "--output_type", fmt, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=err,
                                env=_env(), cwd=REPO)
        # The delay counts from the record's creation (or from launch when ``from_launch``), so
        # the signal lands while snapshots are being written, not while Python starts.
        waited = time.monotonic() + 60
        while (not from_launch and proc.poll() is None and time.monotonic() < waited
               and not (out.exists() or Path(f"{out}.partial").exists())):
            time.sleep(0.01)
        time.sleep(delay)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
        code, tally.peak_mib = _wait(proc, HANG_SECONDS)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    what = f"{fmt} {name} at {delay:.2f}s"
    if code is None:
        tally.hangs = 1
        return tally
    if "Traceback" in stderr:
        tally.tracebacks.append(f"{what}: {stderr.strip().splitlines()[-1]}")
        return tally
    killed = signum == signal.SIGKILL
    # Dying of the signal is fine before the record exists (Python still starting) and after it
    # is closed (the interpreter shutting down): the checks below still demand an exact prefix.
    expected = {0, -signal.SIGKILL} if killed else {0, 130, -signum}
    if code not in expected:
        tally.failures.append(f"{what}: exit {code}: {stderr.strip()}")
        return tally
    promised = None
    for line in stderr.splitlines():
        if "wrote " in line and " snapshots (" in line:
            words = line.split()
            promised = int(words[words.index("wrote") + 1])
    path = out
    if killed and fmt in ("json", "json_compressed") and not out.exists():
        path = Path(f"{out}.partial")          # the native file the JSON writer records into
    if not path.exists():
        if killed or code in (130, -signum):
            tally.clean = 1      # stopped before the record was created
        else:
            tally.failures.append(f"{what}: no record at {out}")
        return tally
    try:
        back = read_record(path)
    except DamoError as error:
        if killed and path.stat().st_size <= 4096:
            tally.clean = 1      # killed before the header was complete
            return tally
        tally.failures.append(f"{what}: unreadable: {error}")
        return tally
    want = reference_record(fmt if fmt == "perf_script" or not path.name.endswith(".partial") else "native",
                            directory)
    kept = back.nr_snapshots
    if kept > want.nr_snapshots or not _columns_equal(back, want.select(np.arange(want.nr_snapshots) < kept)):
        tally.duplicated += max(0, kept - want.nr_snapshots) or 1
        tally.failures.append(f"{what}: {kept} snapshots are not a prefix of the uninterrupted record")
        return tally
    if promised is not None and promised != kept:
        if promised > kept:
            tally.lost += promised - kept
        else:
            tally.duplicated += kept - promised
        tally.failures.append(f"{what}: the message said {promised} snapshots, the file holds {kept}")
        return tally
    tally.clean = 1
    return tally


def storms(nr_runs: int, seed: int, directory: Path, max_delay: float = 4.0) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    for i in range(nr_runs):
        fmt = FORMATS[i % len(FORMATS)]
        signum = signals[(i // len(FORMATS)) % len(signals)]
        from_launch = rng.random() < 0.2          # some land during start-up too
        tally.add(storm_once(fmt, signum, rng.uniform(0.0, max_delay), directory, tag=str(i % 4),
                             from_launch=from_launch))
    return tally


# --- the long run ----------------------------------------------------------------------------

def _fuzz_in_child(nr_cases: int, seed: int) -> Tally:
    """fuzz_readers in a child process, so its peak memory is its own."""
    code = ("import json, os, sys, tempfile; from pathlib import Path\n"
            "from bench.robustness import _hwm_mib, fuzz_readers\n"
            f"with tempfile.TemporaryDirectory() as d: t = fuzz_readers({nr_cases}, {seed}, Path(d))\n"
            "t.peak_mib = _hwm_mib(os.getpid())\n"
            "print(json.dumps(t.__dict__))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(), cwd=REPO, text=True)
    out, err = proc.communicate(timeout=HANG_SECONDS * 10)
    if proc.returncode != 0:
        return Tally(runs=nr_cases, tracebacks=[f"fuzz worker seed {seed}: {err.strip().splitlines()[-1:]}"])
    return Tally(**json.loads(out.strip().splitlines()[-1]))


def long_run(minutes: float, seed: int, directory: Path) -> dict[str, Tally]:
    """Rounds of every part until ``minutes`` have passed."""
    parts = {"reader fuzzing": Tally(), "decompression bombs": Tally(), "signal storms": Tally()}
    deadline = time.monotonic() + minutes * 60
    round_no = 0
    while time.monotonic() < deadline:
        round_no += 1
        parts["reader fuzzing"].add(_fuzz_in_child(400, seed * 1000 + round_no))
        if round_no % 4 == 1:
            parts["decompression bombs"].add(run_bombs(directory))
        parts["signal storms"].add(storms(12, seed * 1000 + round_no, directory))
        print(f"round {round_no}: " + ", ".join(f"{k} {v.runs} runs" for k, v in parts.items()), file=sys.stderr)
    return parts


def table(parts: dict[str, Tally]) -> str:
    lines = ["| part | runs | clean exits | tracebacks | hangs | peak memory | snapshots lost | duplicated |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in parts.items():
        lines.append(f"| {name} | {t.runs} | {t.clean} | {len(t.tracebacks)} | {t.hangs} | {t.peak_mib:.0f} MiB | "
                     f"{t.lost} | {t.duplicated} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.robustness", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default: 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the run (default: 1)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="damo-robustness-") as d:
        parts = long_run(args.minutes, args.seed, Path(d))
    elapsed = (time.time() - started) / 60
    text = (f"{table(parts)}\n\n{elapsed:.1f} minutes, seed {args.seed}, load average "
            f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs.\n")
    problems = [p for t in parts.values() for p in t.tracebacks + t.failures]
    if problems:
        text += "\nProblems:\n" + "\n".join(f"- {p}" for p in problems[:50]) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0 if all(t.ok() for t in parts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
