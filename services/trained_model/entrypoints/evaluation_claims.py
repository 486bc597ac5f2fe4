"""trained_model's answer to a worker's evaluation claim: core NATS request/reply on
``raven.evaluations.{id}.claim`` (no stream stores it), one queue group over every trained_model replica.

Request: an ``EvaluationEvent`` with ``started`` (the worker, the attempt its job delivery is). Reply: a
``RunControl`` for that evaluation: ``cancel = False`` when granted (the evaluation is now RUNNING on that
attempt), ``cancel = True`` with the reason when the worker must not run it (cancelled while PENDING, ended,
a newer attempt, gone): the worker then acks the job without running it. No reply (trained_model or its
database away): the worker hands the job back and tries again later.
"""

from __future__ import annotations

import contextlib

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from common.errors import InvalidArgument
from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import evaluations_pb2, events_pb2
from services.trained_model.domain.evaluation import NAME_PREFIX, parse_evaluation_name
from services.trained_model.service_layer.evaluations import Evaluations

log = get_logger("trained_model.evaluations")

QUEUE_GROUP = "trained-model-evaluation-claims"


class EvaluationClaimResponder:
    def __init__(self, nc: NATS, names: StreamNames, evaluations: Evaluations) -> None:
        self._nc = nc
        self._names = names
        self._evaluations = evaluations
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(
            self._names.evaluation_claim_subject("*"), queue=QUEUE_GROUP, cb=self.handle
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def handle(self, msg: Msg) -> None:
        try:
            claim = evaluations_pb2.EvaluationEvent.FromString(msg.data)
            parse_evaluation_name(f"{NAME_PREFIX}{claim.evaluation_id}")
        except (DecodeError, InvalidArgument):
            return await self._answer(msg, "", 0, "the claim names no evaluation")
        if msg.subject != self._names.evaluation_claim_subject(claim.evaluation_id):
            return await self._answer(msg, claim.evaluation_id, claim.attempt, "claimed on another subject")
        try:
            refusal = await self._evaluations.claim(
                claim.evaluation_id, claim.attempt, claim.started.worker_id
            )
        except Exception:  # no answer: the worker retries the job later
            log.exception("evaluation claim not decided", evaluation=claim.evaluation_id)
            return None
        if refusal:
            log.info("evaluation claim refused", evaluation=claim.evaluation_id, reason=refusal)
        return await self._answer(msg, claim.evaluation_id, claim.attempt, refusal)

    async def _answer(self, msg: Msg, evaluation_id: str, attempt: int, refusal: str) -> None:
        answer = events_pb2.RunControl(
            run_id=evaluation_id, attempt=attempt, cancel=bool(refusal), reason=refusal
        )
        if msg.reply:
            try:
                await msg.respond(answer.SerializeToString())
            except Exception as exc:  # the worker times out and retries
                log.warning("evaluation claim answer not sent", evaluation=evaluation_id, error=str(exc))
