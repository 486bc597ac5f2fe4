"""gRPC client for the worker RPCs of training_run (Claim, Heartbeat, Release), authenticated as the worker
with its pre-issued worker token (``worker_credential.WorkerCredential``).

gRPC status codes become the few outcomes the worker acts on (``service_layer/ports.py``): ``ClaimRefused``
(terminate the job message), ``LeaseLost`` (stop, publish nothing), ``TrainingRunUnavailable`` (try again
later).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc
from common.tls import ClientTLS, aio_channel
from services.trainer_worker.domain.job import run_name
from services.trainer_worker.service_layer.ports import (
    ClaimRefused,
    Lease,
    LeaseLost,
    RunService,
    TrainingRunUnavailable,
)

CALL_TIMEOUT = 10.0
_REFUSED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND)


def _seconds_until(ts: object) -> float:
    if not getattr(ts, "seconds", 0) and not getattr(ts, "nanos", 0):
        return 0.0
    return float(ts.ToNanoseconds()) / 1e9 - time.time()  # type: ignore[attr-defined]


class TrainingRunClient(RunService):
    def __init__(
        self,
        address: str,
        token: Callable[[], str],
        worker_id: str,
        *,
        channel: grpc.aio.Channel | None = None,
        tls: ClientTLS | None = None,
    ) -> None:
        self._channel = channel or aio_channel(address, tls)
        self._stub = training_run_pb2_grpc.TrainingRunServiceStub(self._channel)
        self._token = token
        self.worker_id = worker_id
        # What this worker offers (device, slots), sent with every claim and heartbeat for ListWorkers.
        self.info: training_run_pb2.WorkerInfo | None = None

    def _metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self._token()}"),)

    async def claim(self, run_id: str, job_attempt: int) -> Lease:
        request = training_run_pb2.ClaimTrainingRunRequest(
            name=run_name(run_id), worker_id=self.worker_id, job_attempt=job_attempt, worker=self.info
        )
        try:
            response = await self._stub.ClaimTrainingRun(
                request, metadata=self._metadata(), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSED:
                raise ClaimRefused(f"{exc.code().name}: {exc.details() or ''}") from exc
            raise TrainingRunUnavailable(f"ClaimTrainingRun: {exc.code().name}: {exc.details()}") from exc
        interval = response.heartbeat_interval.ToTimedelta().total_seconds() or 10.0
        return Lease(
            run_id=run_id,
            attempt=response.attempt or job_attempt,
            heartbeat_seconds=interval,
            lease_seconds_left=_seconds_until(response.lease_expire_time) or 3 * interval,
            resume_checkpoint=response.resume_checkpoint,
            training_run=response.training_run,
        )

    async def heartbeat(self, lease: Lease, latest_checkpoint: str = "") -> tuple[bool, float]:
        """Renews the lease; returns (cancel_requested, seconds the lease is valid for)."""
        request = training_run_pb2.HeartbeatTrainingRunRequest(
            name=run_name(lease.run_id),
            worker_id=self.worker_id,
            attempt=lease.attempt,
            latest_checkpoint=latest_checkpoint,
            worker=self.info,
        )
        try:
            response = await self._stub.HeartbeatTrainingRun(
                request, metadata=self._metadata(), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSED:
                raise LeaseLost(f"{exc.code().name}: {exc.details()}") from exc
            raise TrainingRunUnavailable(f"HeartbeatTrainingRun: {exc.code().name}: {exc.details()}") from exc
        left = _seconds_until(response.lease_expire_time) or 3 * lease.heartbeat_seconds
        return response.cancel_requested, left

    async def release(self, lease: Lease, reason: str, latest_checkpoint: str = "") -> None:
        request = training_run_pb2.ReleaseTrainingRunRequest(
            name=run_name(lease.run_id),
            worker_id=self.worker_id,
            attempt=lease.attempt,
            reason=reason,
            latest_checkpoint=latest_checkpoint,
        )
        try:
            await self._stub.ReleaseTrainingRun(request, metadata=self._metadata(), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSED:
                raise LeaseLost(f"{exc.code().name}: {exc.details()}") from exc
            raise TrainingRunUnavailable(f"ReleaseTrainingRun: {exc.code().name}: {exc.details()}") from exc

    async def heartbeat_worker(self) -> None:
        """Says this worker is alive, idle or not (ListWorkers); failures are the caller's to log."""
        request = training_run_pb2.HeartbeatWorkerRequest(worker_id=self.worker_id, worker=self.info)
        try:
            await self._stub.HeartbeatWorker(request, metadata=self._metadata(), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise TrainingRunUnavailable(f"HeartbeatWorker: {exc.code().name}: {exc.details()}") from exc

    async def close(self) -> None:
        await self._channel.close()
