"""Records shared by the old-kernel tests: each workload is recorded once per VM boot."""
from __future__ import annotations

import pytest

from tests.kernel.test_record_kernel import record_hot


@pytest.fixture(scope="session")
def page_idle_record(tmp_path_factory):
    return record_hot(tmp_path_factory.mktemp("page_idle"), "--ops", "page_idle")
