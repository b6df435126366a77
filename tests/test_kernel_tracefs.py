"""Parsing damon_aggregated lines from a trace pipe, in any chunking."""
from __future__ import annotations

from damo.kernel.tracefs import AggregatedParser, find_tracefs

LINES = (
    b"kdamond.0-289 [000] ..... 11.944440: damon_aggregated: target_id=0 nr_regions=2 4096-8192: 3 1\n"
    b"kdamond.0-289 [000] ..... 11.944452: damon_aggregated: target_id=0 nr_regions=2 8192-16384: 0 7\n"
    b"kdamond.0-289 [001] d.... 12.044440: damon_aggregated: target_id=0 nr_regions=3 4096-6144: 20 0\n"
    b"kdamond.0-289 [001] d.... 12.044441: damon_aggregated: target_id=0 nr_regions=3 6144-8192: 1 2\n"
    b"kdamond.0-289 [001] d.... 12.044442: damon_aggregated: target_id=0 nr_regions=3 8192-18446744073709547520: 0 9\n"
)


def parse(chunks):
    parser = AggregatedParser()
    snaps = []
    for chunk in chunks:
        snaps += parser.feed(chunk)
    return snaps + parser.finish()


def test_groups_by_count_not_timestamp():
    snaps = parse([LINES])
    assert [s.end_ns for s in snaps] == [11_944_440_000, 12_044_440_000]   # first line's time, as damo
    assert snaps[0].start.tolist() == [4096, 8192] and snaps[0].end.tolist() == [8192, 16384]
    assert snaps[0].nr_accesses.tolist() == [3, 0] and snaps[0].age.tolist() == [1, 7]
    assert snaps[1].end.tolist()[-1] == 2**64 - 4096


def test_any_chunking_gives_the_same_snapshots():
    whole = parse([LINES])
    for size in (1, 7, 50, 113):
        pieces = [LINES[i:i + size] for i in range(0, len(LINES), size)]
        got = parse(pieces)
        assert [(s.end_ns, s.start.tolist(), s.age.tolist()) for s in got] == \
               [(s.end_ns, s.start.tolist(), s.age.tolist()) for s in whole]


def test_perf_script_spelling_and_missing_age():
    line = b"kdamond.0  4452 [000] 82877.315633: damon:damon_aggregated: target_id=18446623435582458880 " \
           b"nr_regions=1 140731667070976-140731668037632: 0\n"
    (snap,) = parse([line])
    assert snap.target_id == 18446623435582458880 and snap.age.tolist() == [-1]


def test_a_lost_line_restarts_the_snapshot():
    lines = LINES.splitlines(keepends=True)
    snaps = parse([lines[0], lines[2], lines[3], lines[4]])   # snapshot 1 lost its second line
    assert [len(s.start) for s in snaps] == [3]


def test_find_tracefs_from_mounts(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("sysfs /sys sysfs rw 0 0\ntracefs /mnt/trace tracefs rw 0 0\n")
    assert str(find_tracefs(str(mounts))) == "/mnt/trace"


def test_a_lost_line_with_an_equal_count_is_caught_by_addresses_going_back():
    a = b"k-1 [000] ..... 1.000001: damon_aggregated: target_id=0 nr_regions=2 4096-8192: 1 1\n"
    b = b"k-1 [000] ..... 1.000002: damon_aggregated: target_id=0 nr_regions=2 8192-9000: 1 1\n"
    snaps = parse([a, a, b])          # the first snapshot lost its second line
    assert len(snaps) == 1 and snaps[0].start.tolist() == [4096, 8192]


def _trace(lines_per_snapshot: int, nr_snapshots: int, pid: int = 77, flags: bytes = b"d..1.") -> bytes:
    lines = []
    for k in range(nr_snapshots):
        for i in range(lines_per_snapshot):
            lines.append(b"       kdamond.0-%d      [001] %s  %d.%06d: damon_aggregated: target_id=0 "
                         b"nr_regions=%d %d-%d: %d %d\n" % (pid, flags, 1387 + k, 849500 + i, lines_per_snapshot,
                                                            4096 * (i + 1), 4096 * (i + 2), i % 7, k))
    return b"".join(lines)


def test_vectorised_and_line_by_line_parsing_agree():
    from damo.kernel.tracefs import _parse_lines_slowly, parse_event_lines

    # The first part has tracefs's fixed columns (as this machine prints them); the second a pid
    # too wide for them, so the columns are searched for.
    for text in (_trace(5, 3), _trace(5, 3) + _trace(4, 2, pid=1234567, flags=b".Ns21")):
        fast, slow = parse_event_lines(text), _parse_lines_slowly(text)
        assert fast is not None
        for name in slow:
            assert fast[name].tolist() == slow[name].tolist(), name
    assert fast["pid"].tolist() == [77] * 15 + [1234567] * 8
    assert fast["end_ns"][:2].tolist() == [1387_849_500_000, 1387_849_501_000]
    assert fast["age"].tolist()[:6] == [0] * 5 + [1]


def test_lines_of_two_kdamonds_interleaved_stay_apart():
    a, b = _trace(3, 2, pid=10).splitlines(True), _trace(2, 3, pid=20).splitlines(True)
    mixed = b"".join(x for pair in zip(a, b) for x in pair) + b"".join(a[len(b):] + b[len(a):])
    snaps = parse([mixed[i:i + 97] for i in range(0, len(mixed), 97)])
    assert sorted((s.pid, len(s.start)) for s in snaps) == [(10, 3)] * 2 + [(20, 2)] * 3
    assert all(s.start.tolist() == sorted(s.start.tolist()) for s in snaps)


def test_a_lost_events_line_falls_back_to_the_line_by_line_path():
    text = _trace(2, 1) + b"CPU:1 [LOST 3 EVENTS]\n" + _trace(2, 1)
    assert [len(s.start) for s in parse([text])] == [2, 2]
