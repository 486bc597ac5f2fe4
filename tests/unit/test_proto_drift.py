import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_package_imports_with_absolute_paths() -> None:
    from common.proto.raven.v1 import events_pb2, trained_model_pb2_grpc, training_run_pb2

    service = training_run_pb2.DESCRIPTOR.services_by_name["TrainingRunService"]
    assert service.full_name == "raven.v1.TrainingRunService"
    assert hasattr(trained_model_pb2_grpc, "TrainedModelServiceStub")
    event = events_pb2.RunEvent(run_id="r", attempt=1)
    event.started.worker_id = "w"
    assert event.WhichOneof("payload") == "started"
