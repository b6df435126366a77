"""damo.jobs.half_in_child: what a forked child hands back, and that it never outlives the call."""
import os

import pytest

from damo import jobs


def _no_child_left(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def forks(monkeypatch):
    pids: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: pids.append(real_fork()) or pids[-1])
    return pids


def test_the_child_bytes_arrive_whole_while_this_process_works(forks):
    """More than a pipe holds, so the child blocks until this process has done its half."""
    done = []
    payload = bytes(range(256)) * 4096
    assert jobs.half_in_child(lambda: payload, lambda: done.append(True)) == payload
    assert done and len(forks) == 1
    _no_child_left(forks)


def test_a_child_that_raises_delivers_nothing(forks):
    def child():
        raise ValueError("bad chunk")

    assert jobs.half_in_child(child, lambda: None) is None
    _no_child_left(forks)


def test_a_failing_parent_half_kills_and_reaps_the_child(forks):
    def child():
        import time
        time.sleep(60)
        return b""

    def here():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        jobs.half_in_child(child, here)
    _no_child_left(forks)
