"""``python -m services.trainer_worker``: take training, dataset preparation and evaluation jobs until
SIGTERM/SIGINT, then hand running ones back."""

from __future__ import annotations

import asyncio
import signal
import sys

from common.grpc_server import start_metrics_endpoint
from common.logging import configure_logging, get_logger
from common.settings import Settings
from services.trainer_worker.adapters.worker_credential import WorkerCredentialError
from services.trainer_worker.bootstrap import build_worker


async def serve(settings: Settings) -> None:
    app = await build_worker(settings)
    loop = asyncio.get_running_loop()

    shutdowns: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        shutdowns.append(asyncio.ensure_future(app.datasets.shutdown()))
        if app.evaluations is not None:
            shutdowns.append(asyncio.ensure_future(app.evaluations.shutdown()))
        shutdowns.append(asyncio.ensure_future(app.worker.shutdown()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        intakes = [app.worker.run(), app.datasets.run()]
        if app.evaluations is not None:
            intakes.append(app.evaluations.run())
        await asyncio.gather(*intakes)
        await asyncio.gather(*shutdowns)
    finally:
        await app.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in ("serve",):
        print("usage: python -m services.trainer_worker [serve]", file=sys.stderr)
        return 2
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    start_metrics_endpoint(settings.metrics_port)
    try:
        asyncio.run(serve(settings))
    except WorkerCredentialError as exc:
        get_logger("trainer_worker").error("not starting", reason=str(exc))
        print(f"trainer_worker: {exc}", file=sys.stderr)
        return 2
    get_logger("trainer_worker").info("exited cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
