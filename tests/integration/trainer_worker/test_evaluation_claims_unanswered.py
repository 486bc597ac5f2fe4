"""A worker's evaluation claim nobody answers (trained_model down or gone): a reason a person can read, over a
real nats-server, never a Python class name."""

from __future__ import annotations

import nats
import pytest

from common.nats_streams import StreamNames
from services.trainer_worker.adapters.evaluation_jobs import NatsEvaluationClaims
from services.trainer_worker.service_layer.ports import EvaluationClaimUnanswered


async def test_a_claim_without_responder_or_answer_says_so_plainly(nats_url: str, unique: str) -> None:
    names = StreamNames(jobs=f"CJOBS_{unique}", events=f"CEVENTS_{unique}", prefix=f"c{unique}")
    nc = await nats.connect(nats_url)
    try:
        claims = NatsEvaluationClaims(nc, names, timeout=0.3)
        with pytest.raises(EvaluationClaimUnanswered) as caught:
            await claims.claim("e1", 1, "w1")
        assert str(caught.value) == "no trained_model server answers evaluation claims"

        async def silent(_msg: object) -> None:  # a responder that never replies: the request times out
            return None

        subscription = await nc.subscribe(names.evaluation_claim_subject("*"), cb=silent)
        try:
            with pytest.raises(EvaluationClaimUnanswered) as caught:
                await claims.claim("e1", 1, "w1")
            assert str(caught.value) == "trained_model did not answer within 0.3 s"
        finally:
            await subscription.unsubscribe()
    finally:
        await nc.close()
