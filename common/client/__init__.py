"""Python client of the Raven training services (the library ravenctl and other back-end services use)."""

from common.client.client import TERMINAL_STATES, RavenClient, is_terminal_event
from common.client.download import DownloadResult
from common.client.errors import IntegrityError, RavenError
from common.client.retry import NO_RETRY, RetryPolicy
from common.client.sync import SyncRavenClient

__all__ = [
    "NO_RETRY",
    "TERMINAL_STATES",
    "DownloadResult",
    "IntegrityError",
    "RavenClient",
    "RavenError",
    "RetryPolicy",
    "SyncRavenClient",
    "is_terminal_event",
]
