"""The machine's limits for bench_training_run.py: bare ``grpc.aio`` servers, each in its own process.

``bare_server`` answers the same method paths as TrainingRunService with no application code at all:
- unary methods (GetTrainingRun, ListTrainingRuns) return fixed, already serialized responses;
- WatchTrainingRun streams: every message published on a core NATS subject (an already serialized
  WatchTrainingRunResponse) is put on the queue of every open stream and sent as is: the bare fan-out.
The same client processes call it as they call the real server, so the difference is what the service adds.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc
import nats

SERVICE = "/raven.v1.TrainingRunService/"


def bare_server(port_out: Any, unary: dict[str, bytes], nats_url: str, subject: str) -> None:
    asyncio.run(_serve(port_out, unary, nats_url, subject))


async def _serve(port_out: Any, unary: dict[str, bytes], nats_url: str, subject: str) -> None:
    streams: set[asyncio.Queue[bytes]] = set()

    def answer(response: bytes) -> Any:
        async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return response

        return grpc.unary_unary_rpc_method_handler(handler)  # no (de)serializers: bytes in, bytes out

    async def watch(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        streams.add(queue)
        try:
            while True:
                message = await queue.get()
                if not message:
                    return
                yield message
        finally:
            streams.discard(queue)

    async def on_message(msg: Any) -> None:
        for queue in list(streams):
            queue.put_nowait(msg.data)

    handlers = {name: answer(response) for name, response in unary.items()}
    handlers["WatchTrainingRun"] = grpc.unary_stream_rpc_method_handler(watch)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE.strip("/"), handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    nc = await nats.connect(nats_url)
    await nc.subscribe(subject, cb=on_message)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    port_out.put(port)
    await stop.wait()
    await server.stop(0)
    await nc.close()
