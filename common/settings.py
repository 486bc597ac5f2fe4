"""Process settings from ``RAVEN_*`` environment variables (pydantic-settings).

One ``Settings`` class serves every process; each process reads the fields it needs. With only
``RAVEN_DATA_DIR`` set, everything defaults to the embedded layout under it (SQLite files, artifacts,
datasets, nats data).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAVEN_", extra="ignore")

    data_dir: Path = Field(default=Path("./var"), description="root of the embedded default")
    database_url: str = Field(default="", description="SQLAlchemy async URL; default sqlite under data_dir")
    nats_url: str = Field(default="nats://127.0.0.1:4222")
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus port; 0 = disabled")
    artifact_root: str = Field(default="", description="fsspec URL; default file://{data_dir}/artifacts")
    dataset_root: str = Field(default="", description="fsspec URL; default file://{data_dir}/datasets")
    jwt_secret: str = Field(default="", description="HS256 shared secret")
    jwt_public_key: str = Field(default="", description="RS256 PEM public key (verification)")
    jwt_private_key: str = Field(default="", description="RS256 PEM private key (worker/CLI token minting)")
    jwt_audience: str = Field(default="raven")
    jwt_issuer: str = Field(default="raven")
    training_run_addr: str = Field(default="127.0.0.1:50051")
    trained_model_addr: str = Field(default="127.0.0.1:50052")
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # NATS JetStream names.
    jobs_stream: str = Field(default="RAVEN_JOBS")
    events_stream: str = Field(default="RAVEN_RUN_EVENTS")
    subject_prefix: str = Field(default="raven", pattern=r"^[A-Za-z0-9_-]+$")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # Leases (training_run).
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    reaper_interval_seconds: float = Field(default=5.0, gt=0)
    # Worker.
    worker_id: str = Field(default="", description="default: hostname-pid")
    worker_slots: int = Field(default=0, ge=0, description="parallel jobs; 0 = number of GPUs, or 1 on CPU")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    work_dir: str = Field(default="", description="scratch directory; default {data_dir}/work")
    backbone_checkpoint: str = Field(default="", description="artifact key of backbone weights for templates")
    cancel_grace_seconds: float = Field(default=30.0, ge=0)
    progress_every_iters: int = Field(default=10, ge=1)
    progress_every_seconds: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.artifact_root:
            self.artifact_root = f"file://{self.data_dir / 'artifacts'}"
        if not self.dataset_root:
            self.dataset_root = f"file://{self.data_dir / 'datasets'}"
        if not self.work_dir:
            self.work_dir = str(self.data_dir / "work")
        return self

    def database_url_for(self, service: str) -> str:
        """The configured URL, or a SQLite file per service under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"
