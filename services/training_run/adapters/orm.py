"""SQLAlchemy tables owned by training_run (no other service reads them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import false

from common.db import UTCDateTime, naming_metadata

metadata = naming_metadata()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


class TrainingRunRow(Base):
    __tablename__ = "training_runs"
    __table_args__ = (
        UniqueConstraint("owner", "request_id", name="uq_training_runs_owner_request_id"),
        Index("ix_training_runs_create_time_id", "create_time", "id"),
        Index("ix_training_runs_owner_create_time", "owner", "create_time"),
        Index("ix_training_runs_owner_state_create_time", "owner", "state", "create_time", "id"),
        Index("ix_training_runs_state_lease", "state", "lease_expire_time"),
        Index("ix_training_runs_state_pending_deadline", "state", "pending_deadline"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    dataset: Mapped[str] = mapped_column(String(500))
    # "datasets/{id}/versions/{n}" the run trains on (DatasetService refuses to delete it while the run is
    # not final); empty for a run on a plain dataset reference.
    dataset_version: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The version's snapshot, split manifest and files as resolved at Create (RunSpec.dataset_source).
    dataset_source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    base_model: Mapped[str] = mapped_column(String(200), default="")
    base_model_checkpoint: Mapped[str] = mapped_column(String(1000), default="")
    model_template: Mapped[str] = mapped_column(String(100))
    class_names: Mapped[list[str]] = mapped_column(JSON)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_attempts: Mapped[int] = mapped_column(Integer)
    config_text: Mapped[str] = mapped_column(Text, default="")
    config_data: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_sha256: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[int] = mapped_column(Integer)
    phase: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    progress_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    lost_attempts: Mapped[int] = mapped_column(Integer, default=0)
    released_attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str] = mapped_column(String(200), default="")
    lease_expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resume_checkpoint: Mapped[str] = mapped_column(String(1000), default="")
    registering: Mapped[bool] = mapped_column(Boolean, default=False)
    trained_model: Mapped[str] = mapped_column(String(200), default="")
    # The last epoch trained when early stopping ended training (RunCompleted.stopped_epoch); NULL otherwise.
    stopped_epoch: Mapped[int | None] = mapped_column(Integer)
    # Time budgets (seconds, NULL = none); the run's max_runtime ended training; while PENDING with a
    # max_pending, when it has waited too long (the reaper's query).
    max_runtime_seconds: Mapped[float | None] = mapped_column(Float)
    max_pending_seconds: Mapped[float | None] = mapped_column(Float)
    effective_learning_rate: Mapped[float | None] = mapped_column(Float)  # NULL: stored before it was
    # RunSpec.split_guard: the fine-tune guard a run waiting for its implicit version still owes; NULL: none
    split_guard: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stopped_by_time_budget: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pending_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # AttemptRecord per attempt
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    update_time: Mapped[datetime] = mapped_column(UTCDateTime())
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)


class RunLogLineRow(Base):
    """Worker log lines from ``log`` events; (run, event sequence, index) makes redeliveries idempotent."""

    __tablename__ = "training_run_log_lines"
    __table_args__ = (
        UniqueConstraint("run_id", "event_seq", "line_index", name="uq_training_run_log_lines_event"),
        Index("ix_training_run_log_lines_run_attempt", "run_id", "attempt", "id"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    event_seq: Mapped[int] = mapped_column(BigInteger)
    line_index: Mapped[int] = mapped_column(Integer)
    line: Mapped[str] = mapped_column(Text)


class OutboxRow(Base):
    """Messages to publish after commit: jobs (JetStream), run events (JetStream), control (core NATS)."""

    __tablename__ = "training_run_outbox"
    __table_args__ = (Index("ix_training_run_outbox_unsent", "sent_time", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    msg_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_time: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    """Trainer workers seen through their claims and heartbeats (what they run is in training_runs)."""

    __tablename__ = "training_run_workers"
    __table_args__ = (Index("ix_training_run_workers_last_seen", "last_seen_time"),)

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_kind: Mapped[str] = mapped_column(String(16), default="")
    gpu_model: Mapped[str] = mapped_column(String(200), default="")
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    slots: Mapped[int] = mapped_column(Integer, default=0)
    gpus_per_run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 0: did not say
    first_seen_time: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_time: Mapped[datetime] = mapped_column(UTCDateTime())
