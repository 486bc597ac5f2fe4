"""The worker Deployment per run size (scripts/k8s_gpu_sizes.py): prod renders a 4-GPU worker scaled by
KEDA on its own size's consumer, and the check fires on a trigger measuring another size's queue, on a GPU
request that does not match the size, and on drift from the 1-GPU worker.

kubectl is required (see test_k8s_manifests.py): without it these tests fail, they never skip.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from common.nats_streams import worker_consumer
from scripts.k8s_gpu_sizes import check_gpu_sizes, worker_size
from tests.unit.k8s.test_k8s_manifests import ck

SIZED = "trainer-worker-gpus-4"


def _prod() -> tuple[dict[str, Any], ...]:
    try:
        return ck.render("prod")
    except ck.KubectlMissing as e:
        pytest.fail(str(e), pytrace=False)


def _one(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_prod_has_a_4_gpu_worker_scaled_on_its_own_queue() -> None:
    objs = _prod()
    dep = _one(objs, "Deployment", SIZED)
    assert worker_size(dep, objs) == 4 and worker_size(_one(objs, "Deployment", "trainer-worker"), objs) == 1
    trigger = _one(objs, "ScaledObject", SIZED)["spec"]["triggers"][0]["metadata"]
    assert trigger["consumer"] == worker_consumer(4) == "trainer-workers-gpus-4"
    assert _one(objs, "PodDisruptionBudget", SIZED) and check_gpu_sizes(objs, gpu=True) == []
    selectors = {
        o["metadata"]["name"]: o["spec"]["selector"]["matchLabels"] for o in objs if o["kind"] == "Deployment"
    }
    assert selectors[SIZED] != selectors["trainer-worker"]  # the two never adopt each other's pods


def test_a_trigger_on_another_sizes_queue_is_a_problem() -> None:
    objs = copy.deepcopy(_prod())
    _one(objs, "ScaledObject", SIZED)["spec"]["triggers"][0]["metadata"]["consumer"] = "trainer-workers"
    problems = ck.check_scaled_object(_one(objs, "ScaledObject", SIZED), objs, "raven")
    assert problems == [
        f"ScaledObject/{SIZED}: consumer 'trainer-workers' != the workers' durable 'trainer-workers-gpus-4'"
    ]


def test_a_gpu_request_off_its_size_and_drift_from_the_base_worker_are_problems() -> None:
    objs = copy.deepcopy(_prod())
    container = _one(objs, "Deployment", SIZED)["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["nvidia.com/gpu"] = 1
    container["command"] = ["python", "-m", "services.trainer_worker", "--debug"]
    assert check_gpu_sizes(objs, gpu=True) == [
        f"Deployment/{SIZED}: limits nvidia.com/gpu 1 != 4 GPUs x 1 slot(s)",
        f"Deployment/{SIZED}: differs from Deployment/trainer-worker beyond its size (keep them equal)",
    ]
