"""Rows, callers and resources of the authorization matrix (tests/security/test_authorization_matrix.py).

One ``Row`` per RPC of both services (the request it sends and the kind of resource it targets), the broken
credentials, Alice's resources (``World``), and the calls and leak checks the matrix tests share.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from google.protobuf import field_mask_pb2, message

from common.auth import Permission
from common.proto.raven.v1 import datasets_pb2 as ds
from common.proto.raven.v1 import evaluations_pb2 as ev
from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from common.proto.raven.v1 import types_pb2
from tests.helpers import JWT_SECRET, bearer
from tests.security.rpc import WORKER_METHODS, Outcome, all_methods, invoke, on_trained_model_server, path
from tests.security.stack import CLASSES, JSON_CONFIG, Stack, checkpoint_bytes

TR = "/raven.v1.TrainingRunService/"
TM = "/raven.v1.TrainedModelService/"
DS = "/raven.v1.DatasetService/"
EV = "/raven.v1.EvaluationService/"
SECRET_RUN_NAME = "alice-private-run-" + uuid.uuid4().hex[:6]
SECRET_MODEL_NAME = "alice-private-model-" + uuid.uuid4().hex[:6]
SECRET_DATASET_NAME = "alice-private-dataset-" + uuid.uuid4().hex[:6]
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "Error(", "site-packages")


def _upload_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("annotations.json", json.dumps({"images": [], "annotations": [], "categories": []}))
    return buffer.getvalue()


UPLOAD = _upload_zip()


# ---- rows: one per RPC -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    request: Callable[[Stack, str], message.Message]  # request aimed at the resource name given
    # kind of resource the RPC targets: run, terminal_run, pending_run, claimed_run, model, dataset, version,
    # evaluation, evaluable_model (a model of the classes of the stack's evaluation version), or None
    resource: str | None
    more: Callable[[Stack], list[message.Message]] | None = None  # further messages of a client stream


def _run_spec(stack: Stack, display_name: str = "matrix run", **extra: Any) -> tr.TrainingRun:
    values: dict[str, Any] = {"dataset": stack.dataset, "model_template": "rtmdet_tiny", **extra}
    return tr.TrainingRun(
        display_name=display_name, hyperparameters=types_pb2.Hyperparameters(epochs=1), **values
    )


def _import_request(stack: Stack, name: str, request_id: str = "") -> tm.ImportTrainedModelRequest:
    prefix = uuid.uuid4().hex[:8]
    stack.store.put_bytes(f"imports/{prefix}/config.json", __import__("json").dumps(JSON_CONFIG).encode())
    stack.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    return tm.ImportTrainedModelRequest(
        display_name="matrix import",
        config_uri=f"imports/{prefix}/config.json",
        checkpoint_uri=f"imports/{prefix}/model.pth",
        class_names=["dump", "tyre"],
        model_template="rtmdet_tiny",
        request_id=request_id,
    )


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


ROWS: dict[str, Row] = {
    TR + "CreateTrainingRun": Row(lambda s, n: tr.CreateTrainingRunRequest(training_run=_run_spec(s)), None),
    TR + "GetTrainingRun": Row(lambda s, n: tr.GetTrainingRunRequest(name=n), "run"),
    TR + "ListTrainingRuns": Row(lambda s, n: tr.ListTrainingRunsRequest(), None),
    TR + "UpdateTrainingRun": Row(
        lambda s, n: tr.UpdateTrainingRunRequest(
            training_run=tr.TrainingRun(name=n, display_name="renamed"), update_mask=_mask("display_name")
        ),
        "run",
    ),
    TR + "DeleteTrainingRun": Row(lambda s, n: tr.DeleteTrainingRunRequest(name=n), "terminal_run"),
    TR + "CancelTrainingRun": Row(lambda s, n: tr.CancelTrainingRunRequest(name=n, reason="matrix"), "run"),
    TR + "WatchTrainingRun": Row(lambda s, n: tr.WatchTrainingRunRequest(name=n), "terminal_run"),
    TR + "WatchTrainingRuns": Row(lambda s, n: tr.WatchTrainingRunsRequest(), None),
    TR + "GetTrainingRunLogs": Row(lambda s, n: tr.GetTrainingRunLogsRequest(name=n), "run"),
    TR + "ClaimTrainingRun": Row(
        lambda s, n: tr.ClaimTrainingRunRequest(name=n, worker_id="w-matrix", job_attempt=1), "pending_run"
    ),
    TR + "HeartbeatTrainingRun": Row(
        lambda s, n: tr.HeartbeatTrainingRunRequest(name=n, worker_id="w-matrix", attempt=1), "claimed_run"
    ),
    TR + "ReleaseTrainingRun": Row(
        lambda s, n: tr.ReleaseTrainingRunRequest(name=n, worker_id="w-matrix", attempt=1), "claimed_run"
    ),
    TR + "HeartbeatWorker": Row(
        lambda s, n: tr.HeartbeatWorkerRequest(
            worker_id="w-matrix", worker=tr.WorkerInfo(device_kind="cpu", slots=1)
        ),
        None,
    ),
    TR + "ListModelTemplates": Row(lambda s, n: tr.ListModelTemplatesRequest(), None),
    TR + "GetModelTemplate": Row(
        lambda s, n: tr.GetModelTemplateRequest(name="modelTemplates/rtmdet_tiny"), None
    ),
    TR + "ListWorkers": Row(lambda s, n: tr.ListWorkersRequest(), None),
    TM + "GetTrainedModel": Row(lambda s, n: tm.GetTrainedModelRequest(name=n), "model"),
    TM + "ListTrainedModels": Row(lambda s, n: tm.ListTrainedModelsRequest(), None),
    TM + "UpdateTrainedModel": Row(
        lambda s, n: tm.UpdateTrainedModelRequest(
            trained_model=tm.TrainedModel(name=n, description="edited"), update_mask=_mask("description")
        ),
        "model",
    ),
    TM + "DeleteTrainedModel": Row(lambda s, n: tm.DeleteTrainedModelRequest(name=n), "model"),
    TM + "PublishTrainedModel": Row(lambda s, n: tm.PublishTrainedModelRequest(name=n), "model"),
    TM + "UnpublishTrainedModel": Row(lambda s, n: tm.UnpublishTrainedModelRequest(name=n), "model"),
    TM + "GetModelLineage": Row(lambda s, n: tm.GetModelLineageRequest(name=n), "model"),
    TM + "ImportTrainedModel": Row(lambda s, n: _import_request(s, n), None),
    TM + "DownloadModelArtifact": Row(
        lambda s, n: tm.DownloadModelArtifactRequest(name=n, kind=types_pb2.CHECKPOINT), "model"
    ),
    TM + "GetTrainedModelStatistics": Row(lambda s, n: tm.GetTrainedModelStatisticsRequest(name=n), "model"),
    TM + "SetModelAlias": Row(lambda s, n: tm.SetModelAliasRequest(name=n, alias="staging"), "model"),
    TM + "DeleteModelAlias": Row(lambda s, n: tm.DeleteModelAliasRequest(name=n, alias="staging"), "model"),
    EV + "CreateEvaluation": Row(
        lambda s, n: ev.CreateEvaluationRequest(
            trained_model=n, dataset_version=s.evaluation_version(), split="test"
        ),
        "evaluable_model",
    ),
    EV + "GetEvaluation": Row(lambda s, n: ev.GetEvaluationRequest(name=n), "evaluation"),
    EV + "ListEvaluations": Row(lambda s, n: ev.ListEvaluationsRequest(), None),
    EV + "WatchEvaluation": Row(lambda s, n: ev.WatchEvaluationRequest(name=n), "evaluation"),
    EV + "CancelEvaluation": Row(
        lambda s, n: ev.CancelEvaluationRequest(name=n, reason="matrix"), "evaluation"
    ),
    DS + "CreateDataset": Row(
        lambda s, n: ds.CreateDatasetRequest(dataset=ds.Dataset(display_name="m")), None
    ),
    DS + "GetDataset": Row(lambda s, n: ds.GetDatasetRequest(name=n), "dataset"),
    DS + "ListDatasets": Row(lambda s, n: ds.ListDatasetsRequest(), None),
    DS + "DeleteDataset": Row(lambda s, n: ds.DeleteDatasetRequest(name=n), "dataset"),
    DS + "CreateDatasetVersion": Row(
        lambda s, n: ds.CreateDatasetVersionRequest(
            parent=n, dataset_version=ds.DatasetVersion(source_uri=f"file://{s.dataset_root}/{s.dataset}")
        ),
        "dataset",
    ),
    DS + "GetDatasetVersion": Row(lambda s, n: ds.GetDatasetVersionRequest(name=n), "version"),
    DS + "ListDatasetVersions": Row(lambda s, n: ds.ListDatasetVersionsRequest(parent=n), "dataset"),
    DS + "DeleteDatasetVersion": Row(lambda s, n: ds.DeleteDatasetVersionRequest(name=n), "version"),
    DS + "WatchDatasetVersion": Row(lambda s, n: ds.WatchDatasetVersionRequest(name=n), "version"),
    DS + "UploadDatasetVersion": Row(
        lambda s, n: ds.UploadDatasetVersionRequest(
            metadata=ds.UploadDatasetVersionMetadata(
                parent=n,
                size_bytes=len(UPLOAD),
                sha256=hashlib.sha256(UPLOAD).hexdigest(),
                format=ds.ARCHIVE_FORMAT_ZIP,
            )
        ),
        "dataset",
        more=lambda s: [ds.UploadDatasetVersionRequest(chunk=UPLOAD)],
    ),
}
METHODS = {path(m): m for m in all_methods()}


# ---- tokens ------------------------------------------------------------------------------------------------
def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        # Claims everything: a broken credential must be refused however powerful it says it is.
        "permissions": sorted([*Permission]),
        "iat": now,
        "exp": now + 600,
        "aud": "raven",
        "iss": "raven",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


UNAUTHENTICATED_CALLERS: dict[str, Callable[[], Any]] = {
    "no token": lambda: (),
    "empty bearer": lambda: (("authorization", "Bearer "),),
    "not a bearer scheme": lambda: (("authorization", f"Basic {_hs(_claims())}"),),
    "garbage": lambda: bearer("not.a.jwt"),
    "expired": lambda: bearer(_hs(_claims(exp=int(time.time()) - 30))),
    "wrong signature": lambda: bearer(_hs(_claims(), secret="another-secret-" + uuid.uuid4().hex)),
    'alg "none"': lambda: bearer(jwt.encode(_claims(), None, algorithm="none")),
    "wrong audience": lambda: bearer(_hs(_claims(aud="someone-else"))),
    "wrong issuer": lambda: bearer(_hs(_claims(iss="someone-else"))),
    "missing sub": lambda: bearer(_hs(_claims(sub=None))),
    "missing exp": lambda: bearer(_hs(_claims(exp=None))),
    "sub not a string": lambda: bearer(_hs(_claims(sub=""))),
    "permissions not a list": lambda: bearer(_hs(_claims(permissions="superadmin"))),
}


def no_permissions_claim() -> Any:
    return bearer(_hs(_claims(permissions=None)))


# ---- resources ---------------------------------------------------------------------------------------------
class World:
    """Alice's resources (secret names), plus fresh ones for callers that change what they touch."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.run = stack.create_run(stack.who.alice, SECRET_RUN_NAME)
        self.terminal_run = self._cancelled(SECRET_RUN_NAME)
        self.model = stack.import_model(stack.who.alice, SECRET_MODEL_NAME)
        self.dataset = self.new_dataset()
        self.version = self.new_version(self.dataset)
        self.evaluable_model = stack.import_model(stack.who.alice, SECRET_MODEL_NAME, classes=CLASSES)
        self.evaluation = self.new_evaluation()

    def new_evaluation(self) -> str:
        """Alice's evaluation of her evaluable model, PENDING (the stack has no evaluating worker)."""
        request = ev.CreateEvaluationRequest(
            trained_model=self.evaluable_model.name, dataset_version=self.stack.evaluation_version()
        )
        created = self.stack.evaluations.CreateEvaluation(request, metadata=self.stack.who.alice, timeout=60)
        assert created.state == ev.EVALUATION_STATE_PENDING, created
        return str(created.name)

    def new_dataset(self) -> str:
        request = ds.CreateDatasetRequest(dataset=ds.Dataset(display_name=SECRET_DATASET_NAME))
        return str(self.stack.datasets.CreateDataset(request, metadata=self.stack.who.alice, timeout=30).name)

    def new_version(self, dataset: str) -> str:
        version = ds.DatasetVersion(
            source_uri=f"file://{self.stack.dataset_root}/{self.stack.dataset}",
            description=SECRET_DATASET_NAME,
        )
        request = ds.CreateDatasetVersionRequest(parent=dataset, dataset_version=version)
        return str(
            self.stack.datasets.CreateDatasetVersion(request, metadata=self.stack.who.alice, timeout=30).name
        )

    def _cancelled(self, display_name: str) -> Any:
        run = self.stack.create_run(self.stack.who.alice, display_name)
        return self.stack.runs.CancelTrainingRun(
            tr.CancelTrainingRunRequest(name=run.name), metadata=self.stack.who.alice, timeout=30
        )

    def existing(self, kind: str) -> str:
        return {
            "run": self.run.name,
            "pending_run": self.run.name,
            "claimed_run": self.run.name,
            "terminal_run": self.terminal_run.name,
            "model": self.model.name,
            "dataset": self.dataset,
            "version": self.version,
            "evaluable_model": self.evaluable_model.name,
            "evaluation": self.evaluation,
        }[kind]

    def fresh(self, kind: str | None) -> str:
        if kind in ("run", "pending_run"):
            return str(self.stack.create_run(self.stack.who.alice, "fresh run").name)
        if kind == "terminal_run":
            return str(self._cancelled("fresh run").name)
        if kind == "claimed_run":
            name = str(self.stack.create_run(self.stack.who.alice, "fresh run").name)
            self.stack.runs.ClaimTrainingRun(
                tr.ClaimTrainingRunRequest(name=name, worker_id="w-matrix", job_attempt=1),
                metadata=self.stack.who.worker,
                timeout=30,
            )
            return name
        if kind == "model":
            return str(self.stack.import_model(self.stack.who.alice, "fresh model").name)
        if kind == "evaluable_model":
            return str(self.stack.import_model(self.stack.who.alice, "fresh model", classes=CLASSES).name)
        if kind == "evaluation":
            return self.new_evaluation()
        if kind == "dataset":
            return self.new_dataset()
        if kind == "version":
            return self.new_version(self.new_dataset())
        return ""

    @staticmethod
    def missing(kind: str) -> str:
        if kind in ("model", "evaluable_model"):
            return f"trainedModels/{uuid.uuid4()}"
        if kind == "evaluation":
            return f"evaluations/{uuid.uuid4()}"
        if kind == "dataset":
            return f"datasets/{uuid.uuid4().hex}"
        if kind == "version":
            return f"datasets/{uuid.uuid4().hex}/versions/1"
        return f"trainingRuns/{uuid.uuid4().hex}"


def call(stack: Stack, method_path: str, request: message.Message, metadata: Any) -> Outcome:
    channel = stack.tm_channel if on_trained_model_server(method_path) else stack.tr_channel
    row = ROWS.get(method_path)
    more = row.more(stack) if row is not None and row.more is not None else []
    return invoke(channel, METHODS[method_path], request, metadata, timeout=60, stream_timeout=1.5, more=more)


def assert_no_leak(outcome: Outcome, *extra: str) -> None:
    for marker in (*LEAK_MARKERS, SECRET_RUN_NAME, SECRET_MODEL_NAME, SECRET_DATASET_NAME, *extra):
        assert marker not in outcome.details, f"{marker!r} leaked in {outcome}"
        assert marker.encode() not in outcome.status_details, f"{marker!r} leaked in status details"


def passed(outcome: Outcome) -> bool:
    """Authorized: OK, or a stream still open at the deadline (WatchTrainingRuns waits for changes)."""
    return outcome.ok or (outcome.stream_open and outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED)


USER_METHODS = sorted(p for p in METHODS if p not in WORKER_METHODS)
WORKER_ONLY = sorted(p for p in METHODS if p in WORKER_METHODS)
