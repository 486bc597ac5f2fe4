import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from tests.integration.cli.fakes import FakeStack, serve, serve_in_thread


@pytest.fixture
async def stack() -> AsyncIterator[FakeStack]:
    """Fake servers on the test's own loop."""
    async with serve() as running:
        yield running


@pytest.fixture
def thread_stack() -> Iterator[FakeStack]:
    """Fake servers on a loop in a thread, for CliRunner tests.

    The servers' access log is bound to the stderr of now, so it never lands in the stdout/stderr CliRunner
    swaps in for the command (that would make ravenctl's own output unparsable in the test only).
    """
    previous = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        with serve_in_thread() as running:
            yield running
    finally:
        structlog.configure(**previous)
