"""ImportTrainedModel: verified config + checkpoint from the artifact store become a root model."""

from __future__ import annotations

import hashlib
import io
import json
import uuid

import grpc
import pytest
import torch

from common.auth import Permission
from common.proto.raven.v1 import trained_model_pb2 as pb
from tests.helpers import bearer, token
from tests.integration.trained_model.conftest import Env

MMDET_BASED = (
    "_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'\nmodel = dict(bbox_head=dict(num_classes=2))\n"
)
JSON_CONFIG = {"model": {"type": "RTMDet", "bbox_head": {"type": "RTMDetSepBNHead", "num_classes": 2}}}


def checkpoint_bytes(cls_rows: int) -> bytes:
    state = {f"bbox_head.rtm_cls.{i}.weight": torch.zeros(cls_rows, 8, 1, 1) for i in range(3)}
    state["backbone.stem.weight"] = torch.ones(4, 3, 3, 3)
    buffer = io.BytesIO()
    torch.save({"meta": {"epoch": 3}, "state_dict": state}, buffer)
    return buffer.getvalue()


def request(prefix: str, config_name: str = "config.py", **kw: object) -> pb.ImportTrainedModelRequest:
    values = dict(
        display_name=f"imported-{prefix}",
        config_uri=f"imports/{prefix}/{config_name}",
        checkpoint_uri=f"imports/{prefix}/model.pth",
        class_names=["dump", "tyre"],
    )
    values.update(kw)
    return pb.ImportTrainedModelRequest(**values)  # type: ignore[arg-type]


async def test_import_mmdet_based_python_config(env: Env) -> None:
    prefix = uuid.uuid4().hex[:8]
    env.store.put_bytes(f"imports/{prefix}/config.py", MMDET_BASED.encode())
    weights = checkpoint_bytes(2)
    env.store.put_bytes(f"imports/{prefix}/model.pth", weights)
    model = await env.stub.ImportTrainedModel(
        request(prefix, request_id=prefix), metadata=bearer(token("alice"))
    )
    assert (
        model.version == 1 and model.training_run == "" and model.base_model == "" and model.owner == "alice"
    )
    assert list(model.class_names) == ["dump", "tyre"]
    assert model.config["model"]["bbox_head"]["num_classes"] == 2
    assert model.config["model"]["type"] == "RTMDet"  # merged from the mmdet base
    assert model.checkpoint.sha256 == hashlib.sha256(weights).hexdigest()
    assert model.checkpoint.uri.startswith("trained_models/")  # the model owns a copy; deleting it is safe
    assert model.parameter_count == 3 * 2 * 8 + 4 * 27
    again = await env.stub.ImportTrainedModel(
        request(prefix, request_id=prefix), metadata=bearer(token("alice"))
    )
    assert again.name == model.name  # request_id makes import idempotent


async def test_import_json_config(env: Env) -> None:
    prefix = uuid.uuid4().hex[:8]
    env.store.put_bytes(f"imports/{prefix}/config.json", json.dumps(JSON_CONFIG).encode())
    env.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    model = await env.stub.ImportTrainedModel(request(prefix, "config.json"), metadata=bearer(token("alice")))
    assert model.config_sha256 and json.loads(model.config_text) == JSON_CONFIG


async def refused(env: Env, req: pb.ImportTrainedModelRequest, code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.ImportTrainedModel(req, metadata=bearer(token("alice")))
    assert caught.value.code() == code, caught.value.details()
    assert text in caught.value.details()
    listed = await env.stub.ListTrainedModels(
        pb.ListTrainedModelsRequest(display_name=req.display_name), metadata=bearer(token("alice"))
    )
    assert listed.total_size == 0


async def test_checkpoint_with_wrong_class_count_is_refused(env: Env) -> None:
    prefix = uuid.uuid4().hex[:8]
    env.store.put_bytes(f"imports/{prefix}/config.py", MMDET_BASED.encode())
    env.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(5))
    await refused(
        env, request(prefix), grpc.StatusCode.INVALID_ARGUMENT, "rtm_cls.0.weight has 5 output rows"
    )
    assert env.store.list("trained_models") == []  # the copies made while verifying are gone


async def test_config_with_other_class_count_is_refused(env: Env) -> None:
    prefix = uuid.uuid4().hex[:8]
    env.store.put_bytes(f"imports/{prefix}/config.py", MMDET_BASED.encode())
    env.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    req = request(prefix, class_names=["dump", "tyre", "bag"])
    await refused(env, req, grpc.StatusCode.INVALID_ARGUMENT, "num_classes [2]")


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.system('touch /tmp/pwned')\nmodel = dict(bbox_head=dict(num_classes=2))\n",
        "model = dict(bbox_head=dict(num_classes=__import__('os').getpid()))\n",
        "custom_imports = dict(imports=['os'])\nmodel = dict(bbox_head=dict(num_classes=2))\n",
        "_base_ = '../../../../etc/x.py'\nmodel = dict(bbox_head=dict(num_classes=2))\n",
    ],
)
async def test_hostile_configs_are_refused(env: Env, source: str) -> None:
    prefix = uuid.uuid4().hex[:8]
    env.store.put_bytes(f"imports/{prefix}/config.py", source.encode())
    env.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    await refused(env, request(prefix), grpc.StatusCode.INVALID_ARGUMENT, "config_uri")


async def test_pickle_that_runs_code_is_refused(env: Env, tmp_path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    prefix = uuid.uuid4().hex[:8]
    buffer = io.BytesIO()
    torch.save({"state_dict": {"bbox_head.rtm_cls.0.weight": torch.zeros(2, 1)}, "x": Evil()}, buffer)
    env.store.put_bytes(f"imports/{prefix}/config.py", MMDET_BASED.encode())
    env.store.put_bytes(f"imports/{prefix}/model.pth", buffer.getvalue())
    await refused(env, request(prefix), grpc.StatusCode.INVALID_ARGUMENT, "weights-only")


async def test_import_bad_input_and_claims(env: Env) -> None:
    bad = pb.ImportTrainedModelRequest(display_name="", config_uri="../x.py", checkpoint_uri="/abs.pth")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.ImportTrainedModel(bad, metadata=bearer(token("alice")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in ("display_name", "config_uri", "checkpoint_uri", "class_names"):
        assert text in caught.value.details()
    missing = request("nothing-here")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.ImportTrainedModel(missing, metadata=bearer(token("alice")))
    assert (
        caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "not in the artifact store" in caught.value.details()
    )
    no_import = token("bob", [Permission.VIEW_MODELS])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.ImportTrainedModel(request("x"), metadata=bearer(no_import))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
