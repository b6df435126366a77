"""damo.jobs.half_in_child: what a forked child hands back, and that it never outlives the call."""
import pytest

from damo import jobs

from conftest import assert_reaped


def test_the_child_bytes_arrive_whole_while_this_process_works(recorded_forks):
    """More than a pipe holds, so the child blocks until this process has done its half."""
    done = []
    payload = bytes(range(256)) * 4096
    assert jobs.half_in_child(lambda: payload, lambda: done.append(True)) == payload
    assert done and len(recorded_forks) == 1
    assert_reaped(recorded_forks)


def test_a_child_that_raises_delivers_nothing(recorded_forks):
    def child():
        raise ValueError("bad chunk")

    assert jobs.half_in_child(child, lambda: None) is None
    assert_reaped(recorded_forks)


def test_a_failing_parent_half_kills_and_reaps_the_child(recorded_forks):
    def child():
        import time
        time.sleep(60)
        return b""

    def here():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        jobs.half_in_child(child, here)
    assert_reaped(recorded_forks)
