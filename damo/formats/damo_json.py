"""damo's ``json`` and ``json_compressed`` record formats.

The file is a JSON list with one element per monitoring target (damo calls it a record):
``{kdamond_idx, context_idx, intervals, scheme_idx, target_id, scheme_filters, snapshots}``;
a snapshot is ``{start_time, end_time, regions, total_bytes}`` with times as strings of ns,
and a region is ``{start, end, nr_accesses: {samples, percent}, age: {usec, aggr_intervals},
sz_filter_passed}`` with comma-grouped addresses. ``json_compressed`` is the same text
compressed with zlib. See docs/damo-compat.md §2.

Reading never holds the whole text: it is decompressed in pieces and parsed snapshot by
snapshot. damo's own layout (json.dumps with indent=4) takes a fast path: a snapshot's region
list is stripped of punctuation and checked against the expected key skeleton, and all its
numbers are parsed by numpy in one call. Anything laid out differently falls back to the
json module for that snapshot (or, if the record structure itself is unusual, for the file).
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import re
import threading
import warnings
import zlib
from typing import Iterator

import numpy as np

from damo.errors import RecordFileError
from damo.formats import WriterBase, create_private
from damo.output_path import rotate
from damo.model import (ADDR_DTYPE, AGE_DTYPE, AGE_UNKNOWN, DAMO_RECORDS_KEY, INTERVALS_GOAL_KEY, NR_ACCESSES_DTYPE,
                        TARGETS_KEY, TIME_DTYPE, Record, RecordMeta, RegionColumns)

FILL_BYTES = 4 << 20          # decompressed bytes fetched at a time
READ_BYTES = 1 << 20          # compressed bytes read at a time
MATCH_WINDOW = 1 << 20        # input a structural pattern may need
# Bounds that keep a decompression bomb (or any huge file) from taking more than a few hundred
# MiB: one snapshot's text (about 130,000 regions in damo's layout; DAMON's default maximum is
# 1,000), and the whole text of a file that is not in damo's layout, which the json module
# parses in one piece (its objects take about ten times the text).
MAX_VALUE_BYTES = 64 << 20
MAX_GENERAL_BYTES = 32 << 20
EXTRA_KEY = DAMO_RECORDS_KEY    # meta.extra: per-target damo record fields, kept for writing back
# Our record labels, a key of every record object (damo reads the keys it knows and ignores others).
LABELS_KEY = "labels"
TASK_KEY = "target_task"       # our per-record extra: {"pid", "cmdline"} of a process target (damo ignores it)


# --- detection ------------------------------------------------------------------------------

def _looks_like_json(text: bytes) -> bool:
    stripped = text.lstrip(b" \t\r\n")
    return stripped[:1] in (b"[", b"{")


def sniff(head: bytes, fmt: str) -> bool:
    if fmt == "json":
        return _looks_like_json(head)
    # zlib: deflate method, a window of at most 32 KiB, and a header checksum.
    if len(head) < 2 or head[0] & 0x0F != 8 or head[0] >> 4 > 7 or (head[0] << 8 | head[1]) % 31:
        return False
    try:
        return _looks_like_json(zlib.decompressobj().decompress(head, 64))
    except zlib.error:
        return False


# --- value parsing ----------------------------------------------------------------------------

_TIME_UNITS_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
                  "d": 86400 * 10**9}
_SIZE_UNITS = {"B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
               "MiB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TB": 1 << 40,
               "TiB": 1 << 40, "P": 1 << 50, "PB": 1 << 50, "PiB": 1 << 50, "E": 1 << 60, "EB": 1 << 60,
               "EiB": 1 << 60}
_UNIT_PAIR = re.compile(r"\s*(-?[\d.]+)\s*([A-Za-z]+)")


def _number(value, units: dict[str, int] | None = None) -> int:
    """An integer from damo's JSON: a number, a (comma-grouped) digit string, or ``1.5 ms``-like text."""
    if isinstance(value, bool):
        raise ValueError(f"unexpected boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"unexpected value {value!r}")
    text = value.replace(",", "").strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(float(text))
    except ValueError:
        pass
    if units is None:
        raise ValueError(f"not a number: {value!r}")
    total, pos = 0.0, 0
    for m in _UNIT_PAIR.finditer(text):
        if m.start() != pos or m.group(2) not in units:
            raise ValueError(f"cannot parse {value!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"cannot parse {value!r}")
    return int(total)


def _time_ns(value) -> int:
    return _number(value, _TIME_UNITS_NS)


def _time_us(value) -> int:
    return _number(value, {k: v // 1000 for k, v in _TIME_UNITS_NS.items() if v >= 1000} | {"us": 1})


def _target_id(value) -> int:
    if value is None:
        return 0
    tid = _number(value)
    if not 0 <= tid < 1 << 64:
        raise ValueError(f"target_id {value!r} out of range")
    return tid


# --- the fast path for a snapshot's region list -------------------------------------------------

_DROP_FOR_COMPACT = b" \t\r\n,\""
_DIGITS = b"0123456789-"
# Every byte but digits and '-' becomes a separator for np.fromstring.
_TO_NUMBERS = bytes(b if b in _DIGITS else 0x20 for b in range(256))
# What a region looks like once whitespace, commas, quotes, digits and the letters of "null"
# are gone (the keys lose those letters too, which keeps them distinct).
_DIGITS_AND_NULL = _DIGITS + b"nul"
_REGION_SKELETONS = {
    bytes(k).translate(None, b"nul"): v for k, v in (
        (b"{start:end:nr_accesses:{samples:percent:}age:{usec:aggr_intervals:}sz_filter_passed:B}", 7),
        (b"{start:end:nr_accesses:{samples:percent:}age:{usec:aggr_intervals:}sz_filter_passed:}", 7),
        (b"{start:end:nr_accesses:{samples:percent:}age:{usec:aggr_intervals:}}", 6))}
_DANGLING_MINUS = re.compile(rb"-(?!\d)")
_INT64_MAX = np.iinfo(np.int64).max


# The region list exactly as the fast path may read it: strict JSON (no stray tokens, no
# leading zeros, signs only in front), damo's keys in damo's order, whitespace wherever JSON
# allows it. Text that does not match goes to the json module, so the fast path never reads
# what json.loads would reject or read differently. Possessive quantifiers and atomic groups
# keep the match linear (about 100 MB/s).
_INT = rb"-?+(?:0|[1-9]\d*+)"
_DIGIT_STRING = rb'"-?+[\d,]++"'


def _key(name: bytes) -> bytes:
    return rb'\s*+"' + name + rb'"\s*+:\s*+'


_REGION = (rb"\s*+\{" + _key(b"start") + _DIGIT_STRING + rb"\s*+," + _key(b"end") + _DIGIT_STRING + rb"\s*+,"
           + _key(b"nr_accesses") + rb"\{" + _key(b"samples") + _INT + rb"\s*+," + _key(b"percent")
           + rb"(?>" + _INT + rb"|null)\s*+\}\s*+," + _key(b"age") + rb"\{" + _key(b"usec") + rb"(?>" + _INT
           + rb"|null)\s*+," + _key(b"aggr_intervals") + rb"(?>" + _DIGIT_STRING + rb"|" + _INT + rb"|null)\s*+\}"
           + rb"(?:\s*+," + _key(b"sz_filter_passed") + rb'(?>"\d++ B"|' + _DIGIT_STRING + rb"|" + _INT
           + rb"))?+\s*+\}\s*+")
_REGION_LIST = re.compile(rb"\s*+(?:" + _REGION + rb"(?:," + _REGION + rb")*+)?+")


def _fast_regions(text: bytes):
    """Columns of a region list in damo's layout, or None when the layout differs."""
    if not _REGION_LIST.fullmatch(text):
        return None
    compact = text.translate(None, _DROP_FOR_COMPACT)
    if not compact:
        return [np.zeros(0, ADDR_DTYPE), np.zeros(0, ADDR_DTYPE), np.zeros(0, NR_ACCESSES_DTYPE),
                np.zeros(0, AGE_DTYPE)]
    if b"samples:null" in compact or _DANGLING_MINUS.search(compact):
        return None
    skeleton = compact.translate(None, _DIGITS_AND_NULL)
    for region_skeleton, nr_values in _REGION_SKELETONS.items():
        count, rest = divmod(len(skeleton), len(region_skeleton))
        if rest == 0 and skeleton == region_skeleton * count:
            break
    else:
        return None
    # damo writes "percent": null and "usec": null in every region; when that is all the nulls
    # there are, they can simply vanish, which saves rewriting the text.
    nr_nulls = compact.count(b"null")
    if nr_nulls == 2 * count and compact.count(b"percent:null") == count and compact.count(b"usec:null") == count:
        numbers, age_column, nr_values = compact, 3, nr_values - 2
    else:
        numbers, age_column = (compact.replace(b"null", b" -1 ") if nr_nulls else compact), 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = np.fromstring(numbers.translate(_TO_NUMBERS), dtype=np.int64, sep=" ")
        except ValueError:
            return None
    if len(values) != count * nr_values or np.any(values == _INT64_MAX):
        return None            # a number that did not parse cleanly, or one too large for int64
    values = values.reshape(count, nr_values)
    start, end = values[:, 0], values[:, 1]
    if np.any(start < 0) or np.any(end < 0):
        return None
    return [start.astype(ADDR_DTYPE), end.astype(ADDR_DTYPE), values[:, 2].copy(), values[:, age_column].copy()]


# --- the fastest path: damo's exact layout ------------------------------------------------------
#
# json.dumps(indent=4) lays every region out the same way, so a region list of n regions is a fixed
# text with digit runs in known slots (damo 2.x's regions, and damo 3.x's with "probe_hits": []).
# Three cheap passes prove that ``text`` is exactly that (about half the cost of the strict
# regular expression above, which reads every byte):
# 1. with digits and commas deleted, the text must equal the layout's skeleton n times, byte for
#    byte: every other character (spaces, keys, braces, quotes, "null") sits where damo puts it;
# 2. the digits and commas must sit in the slots: kept together with a few anchor characters
#    (quotes, newlines, colons, "}", "l" and brackets, which bound every slot), they must match a
#    short pattern, about a fifth of the text, which also makes the numbers strict JSON (no leading
#    zero in an unquoted number, a comma only where one belongs);
# 3. the anchors leave one gap, the space after a colon (digits could straddle it,
#    "samples":1 2): every colon must be followed by a space.
# Whatever fails goes to _fast_regions (any whitespace, the regex), then to the json module.
_FREE = b"0123456789,"
_ANCHORS = b'"\n:}l[]'
_KEEP_ANCHORED = bytes(b for b in range(256) if b not in _FREE + _ANCHORS)
# The numbers of the anchored text: digits, with anchors as separators and commas dropped
# (digit strings are comma-grouped; a structural comma always has an anchor beside it).
_ANCHORED_TO_NUMBERS = bytes(b if b in b"0123456789" else 0x20 for b in range(256))
_COLON, _SPACE = ord(":"), ord(" ")
_LIST_TAIL = b"\n" + b" " * 16          # before the "]" that closes a snapshot's region list


def _layout_variants():
    """damo's region layouts: (skeleton, anchored pattern, values per region, age column)."""
    indent = "\n" + " " * 20
    lines = ['{', '    "start": "S",', '    "end": "S",', '    "nr_accesses": {', '        "samples": I,',
             '        "percent": null', '    },', '    "age": {', '        "usec": null,',
             '        "aggr_intervals": A', '    },', '    "probe_hits": [],', '    "sz_filter_passed": "Z B"', '}']
    # what each slot's digits and commas may be, once the anchors are all that is left around them
    slot_patterns = {ord("S"): rb"[\d,]++", ord("I"): rb"(?:0|[1-9]\d*+)", ord("N"): rb"[\d,]++",
                     ord("Z"): rb"\d[\d,]*+"}
    variants = []
    for probe_hits, with_sz, age in itertools.product((False, True), (True, False), ('"N"', "null")):
        if probe_hits and not with_sz:
            continue                    # damo 3.x writes both: "probe_hits", then sz_filter_passed
        kept = [line for line in lines if (with_sz or "sz_filter_passed" not in line)
                and (probe_hits or "probe_hits" not in line)]
        if not with_sz:
            kept[-2] = kept[-2].rstrip(",")       # the age object closes the region
        region = (indent + indent.join(kept).replace("A", age)).encode()
        pieces = re.split(rb"[SINZ]", region)
        slots = [c for c in region if c in b"SINZ"]
        pattern = re.escape(pieces[0].translate(None, _KEEP_ANCHORED))
        for slot, piece in zip(slots, pieces[1:]):
            pattern += slot_patterns[slot] + re.escape(piece.translate(None, _KEEP_ANCHORED))
        variants.append((region.translate(None, b"SINZ,"), re.compile(rb"(?:" + pattern + rb"(?:,(?!\Z)|\Z))++"),
                         len(slots), 3 if age != "null" else None))
    return variants


_layouts: list = []              # _layout_variants(), made on first use (not for every import)
_skeleton_cache: dict[tuple[int, int], bytes] = {}


def _layout_regions(text: bytes):
    """Columns of a region list in damo's exact layout, or None when it is laid out otherwise."""
    if not text.endswith(_LIST_TAIL):
        return None
    skeleton = text.translate(None, _FREE)
    body = len(skeleton) - len(_LIST_TAIL)
    if not _layouts:
        _layouts.extend(_layout_variants())
    for idx, (region_skeleton, pattern, nr_values, age_column) in enumerate(_layouts):
        count, rest = divmod(body, len(region_skeleton))
        if rest or not count:
            continue
        expected = _skeleton_cache.get((idx, count))
        if expected is None:
            if len(_skeleton_cache) > 64:
                _skeleton_cache.clear()
            expected = _skeleton_cache[(idx, count)] = region_skeleton * count + _LIST_TAIL
        if skeleton == expected:
            break
    else:
        return None
    anchored = text.translate(None, _KEEP_ANCHORED)         # ends with the tail's newline
    if not pattern.fullmatch(anchored, 0, len(anchored) - 1):
        return None
    chars = np.frombuffer(text, np.uint8)
    colons = np.flatnonzero(chars == _COLON)                 # never the last byte: the tail is
    if not np.all(chars[colons + 1] == _SPACE):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = np.fromstring(anchored.translate(_ANCHORED_TO_NUMBERS, b","), dtype=np.int64, sep=" ")
        except ValueError:
            return None
    if len(values) != count * nr_values or np.any(values == _INT64_MAX):
        return None            # a slot without digits, or a number too large for int64
    values = values.reshape(count, nr_values)
    age = values[:, age_column].copy() if age_column is not None else np.full(count, AGE_UNKNOWN, AGE_DTYPE)
    return [values[:, 0].astype(ADDR_DTYPE), values[:, 1].astype(ADDR_DTYPE), values[:, 2].copy(), age]


def _regions_from_dicts(regions: list, max_nr_accesses: int | None):
    """Columns of a region list that the json module parsed (any layout)."""
    n = len(regions)
    start = np.empty(n, dtype=ADDR_DTYPE)
    end = np.empty(n, dtype=ADDR_DTYPE)
    nr = np.empty(n, dtype=NR_ACCESSES_DTYPE)
    age = np.empty(n, dtype=AGE_DTYPE)
    for i, region in enumerate(regions):
        start[i] = _number(region["start"], _SIZE_UNITS)
        end[i] = _number(region["end"], _SIZE_UNITS)
        accesses = region["nr_accesses"]
        if accesses.get("samples") is not None:
            nr[i] = _number(accesses["samples"])
        elif accesses.get("percent") is not None:
            if not max_nr_accesses:
                # The intervals may come later in the file: the whole-file parse knows them.
                raise _UnusualLayout
            percent = accesses["percent"]
            if isinstance(percent, str):
                percent = float(percent.replace("%", "").replace(",", "").strip())
            nr[i] = int(float(percent) * max_nr_accesses / 100)
        else:
            raise ValueError("a region has no usable nr_accesses")
        aggr_intervals = (region.get("age") or {}).get("aggr_intervals")
        age[i] = AGE_UNKNOWN if aggr_intervals is None else _number(aggr_intervals)
    return [start, end, nr, age]


# --- streaming input ------------------------------------------------------------------------------

class _Inflater(threading.Thread):
    """Decompresses the file in a background thread, a few pieces ahead of the parser.

    zlib releases the GIL while it inflates, so on two cores decompression and parsing overlap.
    The queue is short, so at most a few pieces are held at a time.
    """

    def __init__(self, path, file):
        super().__init__(name="damo-json-inflate", daemon=True)
        self.path = path
        self.file = file
        self.pieces: queue.Queue = queue.Queue(maxsize=4)
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            inflater = zlib.decompressobj()
            while not inflater.eof:
                if inflater.unconsumed_tail:
                    out = inflater.decompress(inflater.unconsumed_tail, FILL_BYTES)
                else:
                    raw = self.file.read(READ_BYTES)
                    if not raw:
                        raise RecordFileError(self.path, "truncated json_compressed record (the zlib stream ends early)")
                    out = inflater.decompress(raw, FILL_BYTES)
                if out and not self._put(out):
                    return
            if inflater.unused_data or self.file.read(1):
                raise RecordFileError(self.path, "corrupt json_compressed record (data after the zlib stream)")
            self._put(b"")
        except BaseException as err:       # handed to the reading thread, which raises it
            self._put(err)

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.pieces.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next_piece(self) -> bytes:
        item = self.pieces.get()
        if isinstance(item, BaseException):
            raise item
        return item


class _Input:
    """The file's (decompressed) bytes, fetched in pieces into a sliding buffer."""

    def __init__(self, path, compressed: bool):
        self.path = path
        self.file = open(path, "rb")
        self.inflater = _Inflater(path, self.file) if compressed else None
        if self.inflater:
            self.inflater.start()
        self.buf = b""
        self.pos = 0
        self.eof = False

    def close(self) -> None:
        if self.inflater:
            self.inflater.stopping.set()
            self.inflater.join()
        self.file.close()

    def _next_piece(self) -> bytes:
        if self.inflater is None:
            return self.file.read(FILL_BYTES)
        return self.inflater.next_piece()

    def fill(self) -> bool:
        """Fetch more bytes (at least as many as are in hand); False at the end of the input."""
        if self.eof:
            return False
        pieces = [self.buf[self.pos:]]
        wanted = max(FILL_BYTES, len(pieces[0]))
        got = 0
        while got < wanted:
            piece = self._next_piece()
            if not piece:
                self.eof = True
                break
            pieces.append(piece)
            got += len(piece)
        if not got:
            return False
        self.buf = b"".join(pieces)
        self.pos = 0
        return True

    def match(self, pattern: re.Pattern):
        """Match ``pattern`` at the current position, fetching more input while it might help.

        Everything the patterns match is short, so a miss with plenty of input in hand is a
        real mismatch; this keeps an unusual file from being pulled into memory here.
        """
        while True:
            m = pattern.match(self.buf, self.pos)
            if m or len(self.buf) - self.pos >= MATCH_WINDOW or not self.fill():
                return m

    def _check_size(self) -> None:
        if len(self.buf) - self.pos > MAX_VALUE_BYTES:
            raise RecordFileError(self.path, f"a snapshot is larger than {MAX_VALUE_BYTES >> 20} MiB of JSON text "
                                             f"(a decompression bomb, or more regions than damo records)")

    def find(self, needle: bytes, offset: int = 0) -> int:
        """Where ``needle`` is, at or after ``offset`` bytes from the current position (-1: nowhere)."""
        while True:
            idx = self.buf.find(needle, self.pos + offset)
            if idx >= 0 or not self.fill():
                return idx
            self._check_size()

    def decode_value(self):
        """The JSON value at the current position, via the json module."""
        start = _WS.match(self.buf, self.pos).end() - self.pos
        while True:
            end = _value_end(self.buf, self.pos + start)
            if end is not None or not self.fill():
                break
            self._check_size()
        if end is None:
            raise ValueError("the value does not end")
        value = json.loads(self.buf[self.pos + start:end])
        self.pos = end
        return value


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _value_end(buf: bytes, pos: int) -> int | None:
    """Where the JSON object or list starting at ``pos`` ends, or None if ``buf`` ends first."""
    depth = 0
    for m in _TOKEN.finditer(buf, pos):
        tok = m.group()
        if tok in (b"{", b"["):
            depth += 1
        elif tok in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                return m.end()
        elif depth == 0:
            raise ValueError("expected an object or a list")
    return None


_WS = re.compile(rb"\s*")
_LIST_OPEN = re.compile(rb"\s*\[")
_LIST_CLOSE = re.compile(rb"\s*\]")
_COMMA = re.compile(rb"\s*,")
_OBJ_CLOSE = re.compile(rb"\s*\}")
_RECORD_HEAD = re.compile(rb'\s*\{((?:[^"\[\]{}]|"[^"\n]*"|\{[^\[\]{}]*\}|\[[^\[\]]*\])*?)'
                          rb'"snapshots"\s*:\s*\[')
_VALUE = rb'("[^"\n]*"|-?[\d.eE+]+|null)'
_SNAPSHOT_HEAD = re.compile(rb'\s*\{\s*"start_time"\s*:\s*' + _VALUE + rb'\s*,\s*"end_time"\s*:\s*' + _VALUE +
                            rb'\s*,\s*"regions"\s*:\s*\[')
# damo 3.x adds "damos_stats" and "sample_interval_us" (group 2) after "total_bytes".
_SNAPSHOT_TAIL = re.compile(rb'\s*\]\s*(?:,\s*"total_bytes"\s*:\s*' + _VALUE + rb'\s*)?'
                            rb'(?:,\s*"damos_stats"\s*:\s*null\s*)?'
                            rb'(?:,\s*"sample_interval_us"\s*:\s*' + _VALUE + rb'\s*)?\}')
_TRAILER = re.compile(rb"\s*\Z")


class _UnusualLayout(Exception):
    """The text is JSON but not laid out as damo writes it; parse it the general way."""



def _parse_list_items(inp: "_Input", parse_item) -> None:
    """Parse ``item, item, ... ]`` (the opening bracket already consumed) with ``parse_item``."""
    if (m := inp.match(_LIST_CLOSE)):
        inp.pos = m.end()
        return
    while True:
        parse_item()
        if (m := inp.match(_COMMA)):
            inp.pos = m.end()
            continue
        m = inp.match(_LIST_CLOSE)
        if not m:
            raise _UnusualLayout
        inp.pos = m.end()
        return

class _Reader:
    def __init__(self, path, fmt: str):
        self.path = path
        self.fmt = fmt
        self.records: list[dict] = []       # damo record fields, without snapshots
        self.snaps: list[tuple[int, int, int]] = []
        self.record_of_snap: list[int] = []
        self.columns = RegionColumns()
        self.max_nr_accesses: int | None = None
        self.sample_interval_us: list[int | None] = []     # per snapshot, damo 3.x's (None: not said)

    def corrupt(self, problem: str) -> RecordFileError:
        return RecordFileError(self.path, f"corrupt {self.fmt} record ({problem})")

    def add_record(self, fields: dict) -> int:
        self.records.append(fields)
        intervals = fields.get("intervals")
        if intervals and self.max_nr_accesses is None:
            sample, aggr = _time_us(intervals["sample_us"]), _time_us(intervals["aggr_us"])
            self.max_nr_accesses = aggr // sample if sample > 0 else None
        return len(self.records) - 1

    def add_snapshot(self, record_idx: int, start_ns: int, end_ns: int, cols, sample_interval=None) -> None:
        tid = _target_id(self.records[record_idx].get("target_id"))
        self.sample_interval_us.append(None if sample_interval is None else _time_us(sample_interval))
        self.snaps.append((tid, start_ns, end_ns))
        self.record_of_snap.append(record_idx)
        self.columns.append(cols)

    def add_snapshot_dict(self, record_idx: int, snap: dict) -> None:
        cols = _regions_from_dicts(snap["regions"], self.max_nr_accesses)
        self.add_snapshot(record_idx, _time_ns(snap["start_time"]), _time_ns(snap["end_time"]), cols,
                          snap.get("sample_interval_us"))

    # The fast, streaming parse of damo's layout.
    def parse_stream(self, inp: _Input) -> None:
        if not (m := inp.match(_LIST_OPEN)):
            raise _UnusualLayout
        inp.pos = m.end()
        _parse_list_items(inp, lambda: self.parse_record(inp))
        # Only whitespace may follow; drop it as it comes so a long tail cannot pile up.
        while True:
            if not _TRAILER.match(inp.buf, inp.pos):
                raise _UnusualLayout
            inp.pos = len(inp.buf)
            if not inp.fill():
                break

    def parse_record(self, inp: _Input) -> None:
        m = inp.match(_RECORD_HEAD)
        if not m:
            raise _UnusualLayout
        head = m.group(1).strip().rstrip(b",")
        try:
            fields = json.loads(b"{" + head + b"}")
        except ValueError:
            raise _UnusualLayout from None
        inp.pos = m.end()
        record_idx = self.add_record(fields)
        _parse_list_items(inp, lambda: self.parse_snapshot(inp, record_idx))
        if (m := inp.match(_OBJ_CLOSE)):
            inp.pos = m.end()
            return
        # Keys after "snapshots" (newer damo versions): parse them generally.
        if not (m := inp.match(_COMMA)):
            raise _UnusualLayout
        inp.buf = inp.buf[:m.end() - 1] + b"{" + inp.buf[m.end():]
        inp.pos = m.end() - 1
        try:
            fields.update(inp.decode_value())
        except (ValueError, UnicodeDecodeError):
            raise _UnusualLayout from None
        self.records[record_idx] = fields

    def parse_snapshot(self, inp: _Input, record_idx: int) -> None:
        m = inp.match(_SNAPSHOT_HEAD)
        if m:
            # find() may refill the buffer, which moves everything but keeps offsets from pos.
            regions_offset = m.end() - inp.pos
            close = inp.find(b"]")
            # damo 3.x writes an empty list into every region ("probe_hits": []): not the end
            while close > 0 and inp.buf[close - 1] == 0x5B:
                close = inp.find(b"]", close + 1 - inp.pos)
            if close >= 0:
                text = inp.buf[inp.pos + regions_offset:close]
                cols = _layout_regions(text)
                if cols is None:
                    cols = _fast_regions(text)
                tail = _SNAPSHOT_TAIL.match(inp.buf, close) if cols is not None else None
                if tail:
                    start_ns = _time_ns(json.loads(m.group(1)))
                    end_ns = _time_ns(json.loads(m.group(2)))
                    interval = json.loads(tail.group(2)) if tail.group(2) else None
                    self.add_snapshot(record_idx, start_ns, end_ns, cols, interval)
                    inp.pos = tail.end()
                    return
        # Not damo's layout (or a layout the fast path does not know): the json module decides.
        try:
            snap = inp.decode_value()
        except (ValueError, UnicodeDecodeError) as err:
            raise self.corrupt(f"bad snapshot: {err}") from None
        if not isinstance(snap, dict):
            raise self.corrupt("a snapshot is not an object")
        self.add_snapshot_dict(record_idx, snap)

    # The general parse, for JSON that is not laid out as damo writes it.
    def parse_whole(self) -> None:
        too_big = RecordFileError(self.path, f"not in damo's JSON layout and larger than {MAX_GENERAL_BYTES >> 20} "
                                             f"MiB of text, which is the most the general JSON parser takes")
        with open(self.path, "rb") as f:
            data = f.read(MAX_GENERAL_BYTES + 1)
            if self.fmt == "json_compressed":
                inflater = zlib.decompressobj()
                try:
                    text = inflater.decompress(data + f.read(), MAX_GENERAL_BYTES + 1)
                except zlib.error as err:
                    raise self.corrupt(f"zlib: {err}") from None
                if len(text) > MAX_GENERAL_BYTES:
                    raise too_big
                if not inflater.eof:
                    raise self.corrupt("the zlib stream ends early")
                data = text
        if len(data) > MAX_GENERAL_BYTES:
            raise too_big
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise self.corrupt(f"bad JSON: {err}") from None
        del data
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise self.corrupt("the top level is not a list of records")
        self.records, self.snaps, self.record_of_snap, self.columns = [], [], [], RegionColumns()
        self.sample_interval_us = []
        self.max_nr_accesses = None
        for rec in value:
            if not isinstance(rec, dict) or not isinstance(rec.get("snapshots"), list):
                raise self.corrupt("a record has no snapshot list")
            fields = {k: v for k, v in rec.items() if k != "snapshots"}
            record_idx = self.add_record(fields)
            for snap in rec["snapshots"]:
                if not isinstance(snap, dict):
                    raise self.corrupt("a snapshot is not an object")
                try:
                    self.add_snapshot_dict(record_idx, snap)
                except _UnusualLayout:
                    raise self.corrupt("nr_accesses in percent without monitoring intervals") from None

    def build(self) -> Record:
        meta = RecordMeta(tool_version="damo")
        for fields in self.records:
            intervals = fields.get("intervals")
            if intervals:
                meta.sample_us = _time_us(intervals["sample_us"])
                meta.aggr_us = _time_us(intervals["aggr_us"])
                meta.update_us = _time_us(intervals["ops_update_us"])
                goal = intervals.get("intervals_goal")
                if isinstance(goal, dict) and _number(goal.get("aggrs", 0)):
                    meta.extra[INTERVALS_GOAL_KEY] = {
                        "access_bp": int(float(goal["access_bp"])) if not str(goal["access_bp"]).endswith("%")
                        else round(float(str(goal["access_bp"])[:-1].replace(",", "")) * 100),
                        "aggrs": _number(goal["aggrs"]), "min_sample_us": _time_us(goal["min_sample_us"]),
                        "max_sample_us": _time_us(goal["max_sample_us"])}
                break
        for fields in self.records:
            labels = fields.get(LABELS_KEY)
            if isinstance(labels, dict):
                meta.labels = {str(k): str(v) for k, v in labels.items()}
                break
        meta.extra[EXTRA_KEY] = [{k: v for k, v in fields.items() if k not in ("intervals", LABELS_KEY, TASK_KEY)}
                                 for fields in self.records]
        tasks = [dict(fields[TASK_KEY], target_id=fields.get("target_id")) for fields in self.records
                 if isinstance(fields.get(TASK_KEY), dict) and isinstance(fields.get("target_id"), int)]
        if tasks:
            meta.extra[TARGETS_KEY] = tasks
        n = len(self.snaps)
        snaps = np.array(self.snaps, dtype=object).reshape(n, 3)
        target_id = np.array([int(t) for t in snaps[:, 0]], dtype=np.uint64)
        start_ns = np.array(snaps[:, 1].tolist(), dtype=TIME_DTYPE)
        end_ns = np.array(snaps[:, 2].tolist(), dtype=TIME_DTYPE)
        counts = np.array(self.columns.counts, dtype=np.int64)
        order = _time_order(start_ns, np.array(self.record_of_snap, dtype=np.int64))
        region_order = None
        if order is not None:
            file_offsets = np.concatenate([[0], np.cumsum(counts)])
            region_order = (np.concatenate([np.arange(file_offsets[i], file_offsets[i + 1]) for i in order])
                            if n else None)
            target_id, start_ns, end_ns, counts = target_id[order], start_ns[order], end_ns[order], counts[order]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        columns = self.columns.build(region_order)
        sample_us = None
        if any(v is not None for v in self.sample_interval_us):
            sample_us = np.array([meta.sample_us or 0 if v is None else v for v in self.sample_interval_us],
                                 dtype=np.int64)
            if order is not None:
                sample_us = sample_us[order]
        return Record(meta, target_id, start_ns, end_ns, offsets, *columns, snapshot_sample_us=sample_us)


def _time_order(start_ns: np.ndarray, record_idx: np.ndarray) -> np.ndarray | None:
    """Interleave targets by time when every target's snapshots are already in time order."""
    if len(record_idx) == 0 or np.all(record_idx == record_idx[0]):
        return None
    for r in np.unique(record_idx):
        if np.any(np.diff(start_ns[record_idx == r]) < 0):
            return None
    return np.lexsort((record_idx, start_ns))


def read(path, fmt: str = "json_compressed") -> Record:
    """Read a damo json or json_compressed record file."""
    reader = _Reader(path, fmt)
    inp = _Input(path, fmt == "json_compressed")
    try:
        try:
            reader.parse_stream(inp)
        except _UnusualLayout:
            reader.parse_whole()
        except zlib.error as err:
            raise reader.corrupt(f"zlib: {err}") from None
    finally:
        inp.close()
    return attach_sidecars(reader.build(), path)


# damo 3.x writes what it records beside the accesses into files next to the record.
SIDECAR_KINDS = ("mem_footprint", "vmas", "proc_stats")
MAX_SIDECAR_BYTES = 256 << 20


def sidecar_path(path, kind: str) -> str:
    return f"{os.fspath(path)}.{kind}"


def read_sidecar(path) -> list:
    """One of damo's sidecar files (a JSON list); RecordFileError if it is not one."""
    try:
        if os.path.getsize(path) > MAX_SIDECAR_BYTES:
            raise RecordFileError(path, f"larger than {MAX_SIDECAR_BYTES >> 20} MiB")
        with open(path, "rb") as f:
            value = json.load(f)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise RecordFileError(path, f"not damo's JSON ({err})") from None
    if not isinstance(value, list):
        raise RecordFileError(path, "not a JSON list of samples")
    return value


def attach_sidecars(record: Record, path) -> Record:
    """Read damo's sidecar files of ``path`` (``<path>.mem_footprint`` ...) into the record."""
    from damo.model import MemFootprints

    for kind in SIDECAR_KINDS:
        side = sidecar_path(path, kind)
        if not os.path.isfile(side):
            continue
        entries = read_sidecar(side)
        if kind == "mem_footprint":
            try:
                record.footprints = MemFootprints.from_damo(entries)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise RecordFileError(side, f"not damo's mem_footprint JSON ({type(err).__name__}: {err})") from None
        elif kind == "vmas":
            record.proc_vmas = entries
        else:
            record.proc_stats = entries
    return record


def write_sidecars(record: Record, path) -> None:
    """damo's sidecar files for what ``record`` holds beside the accesses, each 0600, as damo
    writes them (``json.dump(.., indent=4)``)."""
    from damo.output_path import replace_atomically

    values = {"mem_footprint": record.footprints.to_damo() if record.footprints is not None else None,
              "vmas": record.proc_vmas, "proc_stats": record.proc_stats}
    for kind in SIDECAR_KINDS:
        if values[kind] is None:
            continue
        with replace_atomically(sidecar_path(path, kind)) as tmp:
            with create_private(tmp, binary=False) as f:
                json.dump(values[kind], f, indent=4)


# --- writing --------------------------------------------------------------------------------------

_REGION_TEMPLATE = """
                    {{
                        "start": "{0:,}",
                        "end": "{1:,}",
                        "nr_accesses": {{
                            "samples": {2},
                            "percent": null
                        }},
                        "age": {{
                            "usec": null,
                            "aggr_intervals": AGE
                        }},
                        "sz_filter_passed": "0 B"
                    }}"""
_REGION_WITH_AGE = _REGION_TEMPLATE.replace("AGE", '"{3:,}"')
_REGION_NO_AGE = _REGION_TEMPLATE.replace("AGE", "null")


def _indent_json(value, level: int) -> str:
    """json.dumps(value, indent=4) as it appears nested ``level`` deep in a bigger dump."""
    return json.dumps(value, indent=4).replace("\n", "\n" + "    " * level)


def _regions_text(start, end, nr, age) -> str:
    starts, ends, nrs, ages = start.tolist(), end.tolist(), nr.tolist(), age.tolist()
    if not starts:
        return "[]"
    known = age >= 0
    if known.all():
        body = ",".join(map(_REGION_WITH_AGE.format, starts, ends, nrs, ages))
    elif not known.any():
        body = ",".join(map(_REGION_NO_AGE.format, starts, ends, nrs, ages))
    else:
        body = ",".join((_REGION_WITH_AGE if a >= 0 else _REGION_NO_AGE).format(s, e, n, a)
                        for s, e, n, a in zip(starts, ends, nrs, ages))
    return "[" + body + "\n                ]"


def _record_fields(record: Record, target_id: int, index: int) -> dict:
    """damo's per-target fields: what a damo file said, else what our metadata implies."""
    known = record.meta.extra.get(EXTRA_KEY) or []
    fields = next((dict(f) for f in known if isinstance(f, dict) and f.get("target_id") == target_id), None)
    if fields is None:
        live = record.meta.sample_us is not None
        fields = {"kdamond_idx": 0 if live else None, "context_idx": 0 if live else None,
                  "scheme_idx": None, "target_id": target_id}
    fields["target_id"] = target_id
    return fields


def iter_text(record: Record, raw: bool = True) -> Iterator[str]:
    """damo's JSON text for ``record``, in pieces, as ``json.dumps(.., indent=4)`` would write it.

    ``raw`` selects machine-friendly times and sizes (what damo writes to files); region
    fields are always human-formatted, as damo does.
    """
    from damo import fmt as dfmt

    meta = record.meta
    if meta.sample_us is not None and meta.aggr_us is not None and meta.update_us is not None:
        intervals = {"sample_us": dfmt.format_time_us(meta.sample_us, raw),
                     "aggr_us": dfmt.format_time_us(meta.aggr_us, raw),
                     "ops_update_us": dfmt.format_time_us(meta.update_us, raw)}
        goal = meta.intervals_goal
        if goal is not None:
            intervals["intervals_goal"] = {
                "access_bp": dfmt.format_bp(goal["access_bp"], raw), "aggrs": dfmt.format_nr(goal["aggrs"], raw),
                "min_sample_us": dfmt.format_time_us(goal["min_sample_us"], raw),
                "max_sample_us": dfmt.format_time_us(goal["max_sample_us"], raw)}
    else:
        intervals = None
    target_ids = record.target_ids()
    tuned = record.snapshot_sample_us
    if not target_ids:
        yield "[]"
        return
    tasks = meta.targets_info()
    yield "["
    for t_idx, tid in enumerate(target_ids):
        fields = _record_fields(record, tid, t_idx)
        task = tasks.get(tid, {})
        head = {"kdamond_idx": task.get("kdamond_idx", fields.get("kdamond_idx")),
                "context_idx": task.get("context_idx", fields.get("context_idx")),
                "intervals": intervals, "scheme_idx": fields.get("scheme_idx"), "target_id": tid,
                "scheme_filters": fields.get("scheme_filters") or []}
        if meta.labels:
            head[LABELS_KEY] = dict(meta.labels)
        if task:
            head[TASK_KEY] = dict(task)     # kdamond_idx/context_idx too (several kdamonds), read back from here
        parts = ["\n    {"]
        for key, value in head.items():
            parts.append(f"\n        {json.dumps(key)}: {_indent_json(value, 2)},")
        parts.append('\n        "snapshots": [')
        yield "".join(parts)
        indices = np.flatnonzero(record.target_id == np.uint64(tid))
        if len(indices) == 0:
            yield "]"
        for k, i in enumerate(indices):
            snap = record.snapshot(int(i))
            sizes = (snap.end - snap.start).astype(np.int64)
            total = int(sizes.sum()) if len(sizes) else 0
            yield "".join([
                "\n            {",
                f'\n                "start_time": "{dfmt.format_time_ns_exact(snap.start_ns, raw)}",',
                f'\n                "end_time": "{dfmt.format_time_ns_exact(snap.end_ns, raw)}",',
                '\n                "regions": ', _regions_text(snap.start, snap.end, snap.nr_accesses, snap.age), ",",
                f'\n                "total_bytes": "{dfmt.format_sz(total, raw)}"',
                "" if tuned is None else _tuned_tail(int(tuned[i]), raw),
                "\n            }", "," if k + 1 < len(indices) else "\n        ]"])
        yield "\n    }" + ("," if t_idx + 1 < len(target_ids) else "")
    yield "\n]"


def _tuned_tail(sample_us: int, raw: bool) -> str:
    """damo 3.x's snapshot keys after total_bytes, written for auto-tuned records only (so the
    files of untuned records stay as they were). The interval is a plain number of µs, which
    damo's reader and ours both read as µs (damo's own raw writer puts ns there)."""
    if not raw:
        from damo import fmt as dfmt
        return (',\n                "damos_stats": null,'
                f'\n                "sample_interval_us": "{dfmt.format_time_us_exact(sample_us, raw)}"')
    return ',\n                "damos_stats": null,' f'\n                "sample_interval_us": "{sample_us}"'


def partial_path(path) -> str:
    """Where a JSON writer keeps the record (native) until it is converted on close."""
    return f"{os.fspath(path)}.partial"


def write(record: Record, path, fmt: str = "json_compressed") -> None:
    """Write ``record`` as damo's JSON (zlib-compressed for json_compressed) to a new file."""
    with create_private(path) as out:
        compressor = zlib.compressobj() if fmt == "json_compressed" else None
        pending: list[bytes] = []
        size = 0
        for piece in iter_text(record, raw=True):
            data = piece.encode()
            pending.append(data)
            size += len(data)
            if size >= 1 << 22:
                block = b"".join(pending)
                out.write(compressor.compress(block) if compressor else block)
                pending, size = [], 0
        block = b"".join(pending)
        out.write(compressor.compress(block) + compressor.flush() if compressor else block)
        out.flush()
        os.fsync(out.fileno())


class Writer(WriterBase):
    """Records into a native ``<path>.partial`` file, converted to damo's JSON on close.

    damo's JSON groups snapshots per target and a zlib stream cannot be read before its end,
    so neither can be appended to safely. The native file can: it is flushed every couple of
    seconds and keeps everything up to its last flush when the recorder is killed. ``close``
    writes the JSON beside ``path``, renames it into place, and only then removes the
    partial file; an interrupted close leaves the partial file, which ``damo convert`` turns
    into the JSON.
    """

    def __init__(self, path, meta: RecordMeta, fmt: str = "json_compressed", meta_reserve: int = 0):
        from damo.formats import native

        self.path = path
        self.fmt = fmt
        self.partial_path = partial_path(path)
        rotate(self.partial_path)        # an earlier interrupted record's partial file is kept as .old
        self._native = native.Writer(self.partial_path, meta, meta_reserve=meta_reserve)
        self._closed = False

    def update_meta(self, meta: RecordMeta) -> bool:
        return self._native.update_meta(meta)

    @property
    def nr_snapshots(self) -> int:
        return self._native.nr_snapshots

    @property
    def nr_regions(self) -> int:
        return self._native.nr_regions

    def set_clock(self, clock) -> None:
        self._native.set_clock(clock)

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age=None, sample_us=None) -> None:
        self._native.append(target_id, start_ns, end_ns, start, end, nr_accesses, age, sample_us=sample_us)

    def append_side(self, kind: str, entry: dict) -> None:
        self._native.append_side(kind, entry)

    def flush(self) -> None:
        self._native.flush()

    def close(self) -> None:
        from damo.formats import native
        from damo.output_path import replace_atomically

        if self._closed:
            return
        self._native.close()
        # Each step can be interrupted; calling close again redoes what is not yet done.
        if os.path.exists(self.partial_path):
            record = native.read(self.partial_path)
            with replace_atomically(self.path) as tmp:
                write(record, tmp, self.fmt)
            write_sidecars(record, self.path)
            os.unlink(self.partial_path)
        self._closed = True
