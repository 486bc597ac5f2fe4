from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.cli.fakes import FakeStack, serve, serve_in_thread


@pytest.fixture
async def stack() -> AsyncIterator[FakeStack]:
    """Fake servers on the test's own loop."""
    async with serve() as running:
        yield running


@pytest.fixture
def thread_stack() -> Iterator[FakeStack]:
    """Fake servers on a loop in a thread, for CliRunner tests."""
    with serve_in_thread() as running:
        yield running
