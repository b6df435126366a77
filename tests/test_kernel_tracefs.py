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
