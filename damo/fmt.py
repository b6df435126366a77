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


# --- fixed-width text columns as byte matrices ----------------------------------------------------
#
# Long listings (report raw, access --raw_form) print millions of lines of printf-style fields.
# Each field here is an (n, width) uint8 matrix of ASCII built by a few table lookups over the
# whole column, so a line costs a handful of vectorised byte copies instead of a '%' format.

def _ascii_table(texts: list[str]) -> np.ndarray:
    return np.frombuffer("".join(texts).encode(), dtype=np.uint8).reshape(len(texts), -1)


def _words(table: np.ndarray) -> np.ndarray:
    """A table of 4- or 8-character rows as one 32- or 64-bit word per row, for np.take."""
    return np.ascontiguousarray(table).view(np.uint32 if table.shape[1] == 4 else np.uint64).ravel()


def _take_text(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows of a _words table as an (n, k * width) byte matrix (index of shape (n,) or (n, k))."""
    words = np.take(table, index)
    return words.view(np.uint8).reshape(len(index), -1)


_ZERO4 = _words(_ascii_table(["%04d" % i for i in range(10000)]))     # a lower group, higher digits exist
_BLANK4 = _words(_ascii_table(["%4d" % i if i else "    " for i in range(10000)]))   # leading group
_LAST4 = _words(_ascii_table(["%4d" % i for i in range(10000)]))      # the units group, 0 shows '0'
_ZERO_OR_LAST4 = np.concatenate([_ZERO4, _LAST4])
_ZERO_OR_BLANK4 = np.concatenate([_ZERO4, _BLANK4])
_HEX4 = _words(_ascii_table(["%04x" % i for i in range(1 << 16)]))    # 16 bits of lowercase hex


def hex_column(values: np.ndarray, width: int = 12) -> np.ndarray:
    """``%0{width}x`` of unsigned values below 16**width (width 4, 8 or 12)."""
    groups = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint16).reshape(-1, 4)
    if np.little_endian:
        groups = groups[:, ::-1]
    return _take_text(_HEX4, groups[:, 4 - width // 4:])


def decimal_column(values: np.ndarray, width: int) -> np.ndarray:
    """``%{width}d`` of non-negative integers with at most ``width`` digits (right-aligned)."""
    values = values.astype(np.int64, copy=False)
    n = len(values)
    if not n:
        return np.zeros((0, width), dtype=np.uint8)
    nr_groups = -(-len(str(int(values.max()))) // 4)
    # groups of four digits from the units up; a group is zero-padded when digits precede it
    texts = []
    rest = values
    for position in range(nr_groups):
        if position == nr_groups - 1:       # the leading group
            texts.append(_take_text(_LAST4 if position == 0 else _BLANK4, rest))
            break
        rest, low = np.divmod(rest, 10000)
        table = _ZERO_OR_LAST4 if position == 0 else _ZERO_OR_BLANK4
        texts.append(_take_text(table, low + 10000 * (rest == 0)))
    digits = np.concatenate(texts[::-1], axis=1) if len(texts) > 1 else texts[0]
    have = digits.shape[1]
    if have >= width:
        return digits[:, have - width:]
    out = np.full((n, width), 32, dtype=np.uint8)
    out[:, width - have:] = digits
    return out


def _size_tails() -> np.ndarray:
    """format_sz's text after the first four characters, for '%10d B' sizes up to 1024 (rows
    0..1024) and for '%4d.%03d UNIT' (rows 1025 + unit * 1000 + thousandths, units KiB..TiB)."""
    plain = ["  %4d B" % i for i in range(1025)]
    scaled = [".%03d %s" % (f, u) for u in ("KiB", "MiB", "GiB", "TiB") for f in range(1000)]
    return _words(_ascii_table(plain + scaled))


_SIZE_TAILS = _size_tails()
_SIZE_HEADS = _words(np.concatenate([_ascii_table(["%4d" % i for i in range(10000)]),
                                     np.full((1, 4), 32, dtype=np.uint8)]))     # last row: blank
SIZE_COLUMN_LIMIT = 1 << 50      # below this, sizes are B..TiB and exact in float


def size_column(sizes: np.ndarray) -> np.ndarray:
    """``%12s`` of format_sz for non-negative sizes below SIZE_COLUMN_LIMIT.

    ``'%.3f' % (v / 2**k)`` is the exact binary value rounded half to even, so it is computed
    in integers as thousandths of the unit.
    """
    sizes = sizes.astype(np.int64, copy=False)
    n = len(sizes)
    # unit: KiB..TiB (1..4) when strictly larger than it, as damo compares
    unit = ((sizes > 1 << 10).astype(np.int64) + (sizes > 1 << 20) + (sizes > 1 << 30) + (sizes > 1 << 40))
    shift = unit * 10
    num = sizes * 1000
    q = num >> shift
    r = num - (q << shift)
    half = (np.int64(1) << shift) >> 1
    q += (shift > 0) & ((r > half) | ((r == half) & (q % 2 == 1)))
    whole, frac = np.divmod(q, 1000)
    scaled = unit > 0
    out = np.empty((n, 12), dtype=np.uint8)
    out[:, 0:4] = _take_text(_SIZE_HEADS, np.where(scaled, whole, len(_SIZE_HEADS) - 1))
    out[:, 4:12] = _take_text(_SIZE_TAILS, np.where(scaled, 1025 + (unit - 1) * 1000 + frac, sizes))
    return out


def assemble_lines(template: bytes, fields: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Fixed-width lines: ``template`` repeated, with each (offset, (n, width) byte matrix) field
    copied in at its offset. Copying each field as one opaque item per line is about twice as
    fast as a byte-matrix slice assignment."""
    n = len(fields[0][1]) if fields else 0
    out = np.tile(np.frombuffer(template, dtype=np.uint8), (n, 1))
    layout = np.dtype({"names": [f"f{i}" for i in range(len(fields))],
                       "formats": [f"V{m.shape[1]}" for _, m in fields],
                       "offsets": [offset for offset, _ in fields], "itemsize": len(template)})
    items = out.view(layout).reshape(n)
    for i, (_, matrix) in enumerate(fields):
        items[f"f{i}"] = np.ascontiguousarray(matrix).view(f"V{matrix.shape[1]}").reshape(n)
    return out


# --- ragged text columns: variable-length fields composed into lines --------------------------------
#
# damo 3.x's region lines are fields left-justified to a minimum width, so lines differ in length.
# A field is kept as a fixed-width byte matrix plus each row's text length; the lines are the
# bytes of the concatenated matrices that a keep-mask selects, in one boolean compress.

class RaggedColumn:
    """Texts of a column: an (n, width) byte matrix, each row's text length, and whether the
    text sits at the right (then the row's first ``width - length`` bytes are padding)."""

    def __init__(self, matrix: np.ndarray, lengths: np.ndarray, right: bool):
        self.matrix, self.lengths, self.right = matrix, lengths.astype(np.int64, copy=False), right

    @classmethod
    def from_strings(cls, texts) -> "RaggedColumn":
        """From a numpy string array (or list of str)."""
        encoded = np.strings.encode(np.asarray(texts, dtype=np.dtypes.StringDType()), "utf-8")
        width = max(encoded.dtype.itemsize, 1)
        encoded = encoded.astype(f"S{width}")
        matrix = encoded.view(np.uint8).reshape(len(encoded), width)
        return cls(matrix, np.strings.str_len(encoded), right=False)

    @classmethod
    def right_aligned(cls, matrix: np.ndarray) -> "RaggedColumn":
        """From right-aligned texts without leading spaces of their own (size_column's)."""
        return cls(matrix, matrix.shape[1] - np.argmax(matrix != 32, axis=1), right=True)


class TextTable:
    """Texts of the small non-negative integers 0..N (N < 2**16), made by ``text_of`` once and
    looked up per value; the table grows to the largest value seen."""

    LIMIT = 1 << 16

    def __init__(self, text_of):
        self.text_of = text_of
        self.rows = np.zeros(0, dtype="V1")
        self.lengths = np.zeros(0, dtype=np.int64)
        self.width = 1

    def covers(self, values: np.ndarray) -> bool:
        return values.dtype.kind in "iu" and (not len(values) or (int(values.min()) >= 0
                                                                 and int(values.max()) < self.LIMIT))

    def column(self, values: np.ndarray) -> RaggedColumn:
        top = int(values.max()) + 1 if len(values) else 0
        if top > len(self.rows):
            texts = [self.text_of(v).encode() for v in range(max(top, 2 * len(self.rows), 64))]
            self.width = max(1, max(len(t) for t in texts))
            self.rows = np.array([t.ljust(self.width) for t in texts], dtype=f"S{self.width}").view(
                f"V{self.width}")
            self.lengths = np.array([len(t) for t in texts], dtype=np.int64)
        matrix = np.take(self.rows, values).view(np.uint8).reshape(len(values), self.width)
        return RaggedColumn(matrix, self.lengths[values], right=False)


def _keep_rows(width: int, min_width: int, right: bool) -> np.ndarray:
    """Row L: which bytes of a field of ``width`` (then ``min_width`` of padding) a text of
    length L keeps, as one opaque item per row."""
    rows = np.zeros((width + 1, width + min_width), dtype=bool)
    for length in range(width + 1):
        if right:
            rows[length, width - length:width] = True
        else:
            rows[length, :length] = True
        rows[length, width:width + max(0, min_width - length)] = True
    return rows.view(np.uint8).view(f"V{width + min_width}").ravel()


def _fields(out: np.ndarray, places: list[tuple[int, int]]) -> np.ndarray:
    """``out`` (lines as rows) viewed as one record per line with an opaque field per place."""
    layout = np.dtype({"names": [f"f{i}" for i in range(len(places))],
                       "formats": [f"V{width}" for _, width in places],
                       "offsets": [at for at, _ in places], "itemsize": out.shape[1]})
    return out.view(layout).reshape(len(out))


_LINE_BUFFERS: list = []        # [(template, keep template, text rows, keep rows)]: the last ones made


def _line_buffers(template: bytes, keep_template: bytes, nr_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the templates, reused from the previous call when they fit: the fields are
    rewritten every time, and fresh pages cost more than the copying they save."""
    if _LINE_BUFFERS:
        old_template, old_keep, text, keep = _LINE_BUFFERS[0]
        if old_template == template and old_keep == keep_template and len(text) >= nr_lines:
            return text[:nr_lines], keep[:nr_lines]
    text = np.tile(np.frombuffer(template, dtype=np.uint8), (nr_lines, 1))
    keep = np.tile(np.frombuffer(keep_template, dtype=bool), (nr_lines, 1))
    _LINE_BUFFERS[:] = [(template, keep_template, text, keep)]
    return text, keep


def join_ragged(parts: list, nr_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """Lines made of ``parts``, each a literal ``bytes`` or ``(RaggedColumn, min_width)`` (the text
    left-justified to at least min_width); every line ends with a newline.

    Returns the lines' bytes and the end offset of each line in them.
    """
    template, keep_template = bytearray(), bytearray()
    text_places, keep_places, columns = [], [], []
    line_lengths = np.full(nr_lines, 1 + sum(len(p) for p in parts if isinstance(p, bytes)), dtype=np.int64)
    for part in parts:
        if isinstance(part, bytes):
            template += part
            keep_template += b"\x01" * len(part)
            continue
        column, min_width = part
        width = column.matrix.shape[1]
        text_places.append((len(template), width))
        keep_places.append((len(template), width + min_width))
        columns.append((column, min_width))
        template += b" " * (width + min_width)
        keep_template += b"\x00" * (width + min_width)
        line_lengths += np.maximum(column.lengths, min_width)
    template += b"\n"
    keep_template += b"\x01"
    text, keep = _line_buffers(bytes(template), bytes(keep_template), nr_lines)
    text_fields, keep_fields = _fields(text, text_places), _fields(keep, keep_places)
    for i, (column, min_width) in enumerate(columns):
        width = column.matrix.shape[1]
        text_fields[f"f{i}"] = np.ascontiguousarray(column.matrix).view(f"V{width}").reshape(nr_lines)
        keep_fields[f"f{i}"] = np.take(_keep_rows(width, min_width, column.right), column.lengths)
    return text[keep], np.cumsum(line_lengths)
