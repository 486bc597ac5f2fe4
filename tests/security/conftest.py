"""One real stack (training_run + trained_model servers, SQLite, nats-server) shared by the security tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.nats_launcher import LocalNats
from tests.security.stack import Stack


@pytest.fixture(scope="session")
def stack(nats_server: LocalNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("security"), nats_server.url).start()
    yield running
    running.stop()
