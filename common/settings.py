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
    jwt_private_key: str = Field(default="", description="RS256 PEM private key (minting; never on workers)")
    jwt_audience: str = Field(default="raven")
    jwt_issuer: str = Field(default="raven")
    jwt_revoked_ids: str = Field(default="", description="comma-separated token ids (jti) refused")
    # The worker's credential: a pre-issued worker token (`ravenctl token --worker`), never the signing key.
    worker_token: str = Field(default="", description="worker: its worker token")
    worker_token_file: str = Field(default="", description="worker: file with its token, re-read on change")
    training_run_addr: str = Field(default="127.0.0.1:50051")
    trained_model_addr: str = Field(default="127.0.0.1:50052")
    # TLS (common/tls.py). Unset: plaintext, the embedded default. PEM files, re-read when they change.
    tls_cert_file: str = Field(default="", description="server certificate chain; set with the key for TLS")
    tls_key_file: str = Field(default="", description="server private key")
    tls_client_ca_file: str = Field(default="", description="server: require client certs signed by it")
    tls_ca_file: str = Field(default="", description="client: root CA of the servers; set = connect over TLS")
    tls_client_cert_file: str = Field(default="", description="client certificate chain (for mTLS servers)")
    tls_client_key_file: str = Field(default="", description="client private key (for mTLS servers)")
    tls_server_name: str = Field(default="", description="client: name expected in the server's cert")
    health_port: int = Field(
        default=0, ge=0, le=65535, description="plaintext port serving only grpc.health (probes); 0 = none"
    )
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # NATS JetStream names.
    jobs_stream: str = Field(default="RAVEN_JOBS")
    events_stream: str = Field(default="RAVEN_RUN_EVENTS")
    subject_prefix: str = Field(default="raven", pattern=r"^[A-Za-z0-9_-]+$")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    dead_letters_stream: str = Field(default="", description="default: {SUBJECT_PREFIX}_DEAD_LETTERS")
    # Poison messages: a message is delivered at most this many times, then dead-lettered and its run FAILED.
    consumer_max_deliver: int = Field(
        default=20, ge=2, description="event and dead-letter consumers (~16 min of retries)"
    )
    worker_max_deliver: int = Field(
        default=30, ge=2, description="job consumer; its naks also carry training_run outages (~25 min)"
    )
    retry_backoff_seconds: list[float] = Field(
        default=[1.0, 2.0, 5.0, 10.0, 30.0, 60.0], min_length=1, description="nak delays; the last repeats"
    )
    # Leases (training_run).
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    reaper_interval_seconds: float = Field(default=5.0, gt=0)
    lease_startup_grace_seconds: float = Field(
        default=0.0,
        ge=0,
        description="after start-up no lease expires for this long (at least lease_seconds): workers could "
        "not heartbeat while training_run was down",
    )
    ordered_consumer_lease_seconds: float = Field(
        default=10.0,
        ge=1,
        description="one replica at a time applies run and dataset events (in stream order); a replica that "
        "died holding that lease is replaced after this long",
    )
    # trained_model: the champion gate of PublishTrainedModel.
    publish_tolerance: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="a candidate's test bbox mAP may be this much below the champion's",
    )
    # Worker.
    worker_id: str = Field(default="", description="default: hostname-pid")
    worker_slots: int = Field(default=0, ge=0, description="parallel jobs; 0 = number of GPUs, or 1 on CPU")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    worker_gpus_per_run: int = Field(
        default=1,
        ge=1,
        le=8,
        description="the run size this worker takes: ranks per attempt (GPUs per run on CUDA, gloo processes "
        "on CPU); it pulls that size's job queue only, and a slot holds that many GPUs",
    )
    work_dir: str = Field(default="", description="scratch directory; default {data_dir}/work")
    backbone_checkpoint: str = Field(default="", description="artifact key of backbone weights for templates")
    cancel_grace_seconds: float = Field(default=30.0, ge=0)
    preemption_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="on SIGTERM (node drain, spot reclaim) the training child has this long to checkpoint "
        "before it is killed; then upload, release and exit take up to 30 s more: keep the sum below the "
        "pod's terminationGracePeriodSeconds (and a spot notice's 120 s)",
    )
    progress_every_iters: int = Field(default=10, ge=1)
    progress_every_seconds: float = Field(default=2.0, ge=0)
    tile_cache_max_bytes: int = Field(
        default=20 * 2**30,
        ge=0,
        description="worker: the tiled train splits kept under {work_dir}/.tile-cache are trimmed to this "
        "(least recently used first, never one a run uses); 0 = unbounded",
    )

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.artifact_root:
            self.artifact_root = f"file://{self.data_dir / 'artifacts'}"
        if not self.dataset_root:
            self.dataset_root = f"file://{self.data_dir / 'datasets'}"
        if not self.work_dir:
            self.work_dir = str(self.data_dir / "work")
        for a, b in (("tls_cert_file", "tls_key_file"), ("tls_client_cert_file", "tls_client_key_file")):
            if bool(getattr(self, a)) != bool(getattr(self, b)):
                raise ValueError(f"set RAVEN_{a.upper()} and RAVEN_{b.upper()} together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("RAVEN_TLS_CLIENT_CA_FILE (mTLS) needs RAVEN_TLS_CERT_FILE and _KEY_FILE")
        return self

    def revoked_token_ids(self) -> frozenset[str]:
        return frozenset(i.strip() for i in self.jwt_revoked_ids.split(",") if i.strip())

    def database_url_for(self, service: str) -> str:
        """The configured URL, or a SQLite file per service under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"
