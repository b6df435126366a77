"""masim's access-pattern config format, parsed into plain dataclasses.

The format (see masim's README): lines whose first non-blank character is
``#`` are comments and vanish before anything else happens. Blank lines
separate paragraphs. The first paragraph lists the memory regions, one per
line, ``name, size_in_bytes[, init_file|none]``. Every later paragraph is a
phase: a name line, a duration line (milliseconds), then one or more access
pattern lines ``region, random(1)/sequential(0), stride, weight[, ro|wo|rw]``.

Where masim is stricter than it needs to be we accept: the last line need not
end with a newline, and several blank lines count as one separator. Real
mistakes (unknown region, bad number, wrong field count, a phase without
patterns, a zero weight, ...) raise ``ConfigError`` naming ``FILE:LINE``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from damo.errors import DamoError

RW_MODES = ("ro", "wo", "rw")
DEFAULT_RW_MODE = "wo"        # masim's default: sequential and random writes


class ConfigError(DamoError):
    """A masim config that cannot be used; the message starts with ``FILE:LINE:``."""

    def __init__(self, path: str, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Region:
    """One memory region: a separate anonymous mapping of ``size`` bytes."""

    name: str
    size: int
    init_file: str | None = None  # initial content, read into the region before the phases
    line: int = 0                 # where it was defined, for messages


@dataclass(frozen=True)
class Pattern:
    """How one region is accessed during a phase.

    ``weight`` is the pattern's share of the phase's time relative to the
    other patterns of the phase. ``stride`` (bytes) only matters for
    sequential patterns.
    """

    region: str
    random: bool
    stride: int
    weight: int
    rw_mode: str = DEFAULT_RW_MODE
    line: int = 0


@dataclass(frozen=True)
class Phase:
    """A named stretch of ``duration_ms`` during which ``patterns`` share the time."""

    name: str
    duration_ms: int
    patterns: tuple[Pattern, ...]
    line: int = 0

    @property
    def total_weight(self) -> int:
        return sum(p.weight for p in self.patterns)


@dataclass(frozen=True)
class Config:
    """A parsed masim config."""

    path: str
    regions: tuple[Region, ...]
    phases: tuple[Phase, ...]
    region_index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def duration_ms(self) -> int:
        return sum(p.duration_ms for p in self.phases)

    def region(self, name: str) -> Region:
        return self.regions[self.region_index[name]]


def _paragraphs(text: str) -> list[list[tuple[int, str, str]]]:
    """Split into paragraphs of (line number, stripped text, raw text), comments removed first."""
    paragraphs: list[list[tuple[int, str, str]]] = []
    current: list[tuple[int, str, str]] = []
    # splitlines() keeps a last line that has no trailing newline (masim drops it).
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            # Comments go before paragraph splitting, as in masim, so a comment
            # line never separates two paragraphs.
            continue
        if not stripped:
            if current:
                paragraphs.append(current)
                current = []
            continue
        current.append((number, stripped, raw))
    if current:
        paragraphs.append(current)
    return paragraphs


def _split_fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(",")]


def _parse_int(path: str, number: int, text: str, what: str, minimum: int) -> int:
    # Only plain decimal digits: masim's atoi() would quietly turn "10MB" into 10
    # and "ten" into 0, which is never what the author meant.
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        raise ConfigError(path, number, f"{what} {text!r} is not a whole number")
    value = int(text)
    if value < minimum:
        raise ConfigError(path, number, f"{what} must be at least {minimum}, not {value}")
    return value


def _parse_region(path: str, number: int, line: str) -> Region:
    fields = _split_fields(line)
    if len(fields) not in (2, 3):
        raise ConfigError(path, number,
                          f"a region line has 2 or 3 fields (name, size[, init_file]), "
                          f"not {len(fields)}: {line!r}")
    name = fields[0]
    if not name:
        raise ConfigError(path, number, "region name is empty")
    size = _parse_int(path, number, fields[1], f"size of region {name!r}", 1)
    init_file = None
    if len(fields) == 3:
        if not fields[2]:
            raise ConfigError(path, number, f"init file of region {name!r} is empty (use 'none')")
        if fields[2] != "none":
            init_file = fields[2]
    return Region(name=name, size=size, init_file=init_file, line=number)


def _parse_pattern(path: str, number: int, line: str, region_index: dict[str, int],
                   default_rw_mode: str) -> Pattern:
    fields = _split_fields(line)
    if len(fields) not in (4, 5):
        raise ConfigError(path, number,
                          f"an access pattern line has 4 or 5 fields "
                          f"(region, random, stride, weight[, ro|wo|rw]), not {len(fields)}: {line!r}")
    region = fields[0]
    if region not in region_index:
        known = ", ".join(region_index)
        raise ConfigError(path, number, f"unknown region {region!r} (regions: {known})")
    if fields[1] not in ("0", "1"):
        raise ConfigError(path, number,
                          f"randomness must be 0 (sequential) or 1 (random), not {fields[1]!r}")
    random = fields[1] == "1"
    # A sequential pattern with stride 0 would touch one byte forever; random ones ignore it.
    stride = _parse_int(path, number, fields[2], "stride", 0 if random else 1)
    weight = _parse_int(path, number, fields[3], "weight", 1)
    rw_mode = default_rw_mode
    if len(fields) == 5:
        rw_mode = fields[4]
        if rw_mode not in RW_MODES:
            raise ConfigError(path, number, f"read/write mode must be ro, wo or rw, not {rw_mode!r}")
    return Pattern(region=region, random=random, stride=stride, weight=weight,
                   rw_mode=rw_mode, line=number)


def _parse_phase(path: str, paragraph: list[tuple[int, str, str]], region_index: dict[str, int],
                 default_rw_mode: str) -> Phase:
    name_line, _, raw_name = paragraph[0]
    # masim prints the name line as written, leading blanks included.
    name = raw_name.rstrip()
    if len(paragraph) < 2:
        raise ConfigError(path, name_line,
                          f"phase {name!r} has no duration line and no access patterns")
    duration_line, duration_text, _ = paragraph[1]
    duration = _parse_int(path, duration_line, duration_text,
                          f"duration (ms) of phase {name!r}", 1)
    if len(paragraph) < 3:
        raise ConfigError(path, duration_line, f"phase {name!r} has no access pattern lines")
    patterns = tuple(_parse_pattern(path, number, line, region_index, default_rw_mode)
                     for number, line, _ in paragraph[2:])
    return Phase(name=name, duration_ms=duration, patterns=patterns, line=name_line)


def parse_config(text: str, path: str = "<config>", default_rw_mode: str = DEFAULT_RW_MODE) -> Config:
    """Parse the text of a masim config; ``path`` is only used in messages."""
    if default_rw_mode not in RW_MODES:
        raise DamoError(f"default read/write mode must be ro, wo or rw, not {default_rw_mode!r}")
    paragraphs = _paragraphs(text)
    if not paragraphs:
        raise ConfigError(path, 1, "no regions and no phases (the file is empty or all comments)")
    regions: list[Region] = []
    region_index: dict[str, int] = {}
    for number, line, _ in paragraphs[0]:
        region = _parse_region(path, number, line)
        if region.name in region_index:
            first = regions[region_index[region.name]].line
            raise ConfigError(path, number,
                              f"region {region.name!r} is defined twice (first at line {first})")
        region_index[region.name] = len(regions)
        regions.append(region)
    if len(paragraphs) < 2:
        last_line = paragraphs[0][-1][0]
        raise ConfigError(path, last_line,
                          "no phases after the regions (a blank line must separate them)")
    phases = tuple(_parse_phase(path, p, region_index, default_rw_mode) for p in paragraphs[1:])
    return Config(path=path, regions=tuple(regions), phases=phases, region_index=region_index)


def load_config(path: str | os.PathLike, default_rw_mode: str = DEFAULT_RW_MODE) -> Config:
    """Read and parse a masim config file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(path, None, f"not a text file ({err.reason})") from None
    except OSError as err:
        raise ConfigError(path, None, f"cannot read ({err.strerror})") from None
    return parse_config(text, path, default_rw_mode)


def format_config(config: Config) -> str:
    """The text of masim's ``--pr_config``: the regions, then each phase's patterns."""
    out = ["memory regions"]
    out += [f"\t{r.name}: {r.size} bytes" for r in config.regions]
    out.append("")
    for phase in config.phases:
        out.append(f"Phase ({phase.name}) for {phase.duration_ms} ms")
        for i, p in enumerate(phase.patterns):
            how = "randomly" if p.random else "sequentially"
            out.append(f"\tPattern {i}")
            out.append(f"\t\t{how} access region {p.region} with stride {p.stride}")
    return "\n".join(out) + "\n"


def bundled_configs_dir() -> str:
    """Where the configs shipped with this package live."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def bundled_configs() -> dict[str, str]:
    """The bundled configs by name (file name without .cfg), sorted."""
    folder = bundled_configs_dir()
    names = sorted(f for f in os.listdir(folder) if f.endswith(".cfg"))
    return {f[:-len(".cfg")]: os.path.join(folder, f) for f in names}


def resolve_config_path(name: str) -> str:
    """``name`` as given if it exists, else a bundled config of that name (with or without .cfg)."""
    if os.path.exists(name) or os.sep in name:
        return name
    for candidate in (name, name + ".cfg"):
        bundled = os.path.join(bundled_configs_dir(), candidate)
        if os.path.isfile(bundled):
            return bundled
    return name
