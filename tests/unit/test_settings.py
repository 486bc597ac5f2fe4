from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import Settings


def test_embedded_defaults_live_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEN_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.database_url_for("training_run") == f"sqlite+aiosqlite:///{tmp_path}/training_run.db"
    assert settings.database_url_for("trained_model") == f"sqlite+aiosqlite:///{tmp_path}/trained_model.db"
    assert settings.artifact_root == f"file://{tmp_path}/artifacts"
    assert settings.dataset_root == f"file://{tmp_path}/datasets"


def test_documented_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "RAVEN_DATABASE_URL": "postgresql+asyncpg://u@db/raven",
        "RAVEN_NATS_URL": "nats://nats:4222",
        "RAVEN_GRPC_PORT": "6000",
        "RAVEN_METRICS_PORT": "9100",
        "RAVEN_ARTIFACT_ROOT": "s3://bucket/artifacts",
        "RAVEN_DATASET_ROOT": "s3://bucket/datasets",
        "RAVEN_JWT_SECRET": "s",
        "RAVEN_JWT_PUBLIC_KEY": "pem",
        "RAVEN_TRAINING_RUN_ADDR": "training-run:50051",
        "RAVEN_TRAINED_MODEL_ADDR": "trained-model:50052",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url_for("training_run") == env["RAVEN_DATABASE_URL"]
    assert settings.nats_url == env["RAVEN_NATS_URL"]
    assert settings.grpc_port == 6000
    assert settings.metrics_port == 9100
    assert settings.artifact_root == env["RAVEN_ARTIFACT_ROOT"]
    assert settings.dataset_root == env["RAVEN_DATASET_ROOT"]
    assert (settings.jwt_secret, settings.jwt_public_key) == ("s", "pem")
    assert settings.training_run_addr == "training-run:50051"
    assert settings.trained_model_addr == "trained-model:50052"


def test_invalid_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEN_GRPC_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()
