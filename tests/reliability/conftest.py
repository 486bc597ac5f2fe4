"""One real stack (nats-server, both services, two CPU workers, short leases) shared by the fault-injection
tests of this package; the load test starts its own, without workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.stack import Stack
from tests.reliability import harness


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with harness.make_stack(tmp_path_factory.mktemp("reliability")) as running:
        running.add_worker("rel-worker-2")
        yield running
