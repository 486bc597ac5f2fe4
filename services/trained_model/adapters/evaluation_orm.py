"""The evaluations table (trained_model's own; on the same metadata as ``orm.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import UTCDateTime
from services.trained_model.adapters.orm import Base


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("owner", "request_id", name="uq_evaluations_owner_request_id"),
        Index("ix_evaluations_create_time_id", "create_time", "id"),
        Index("ix_evaluations_model_id", "model_id"),
        Index("ix_evaluations_dataset_version", "dataset_version"),
        Index("ix_evaluations_job_published", "job_published"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(36))
    dataset_version: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(16))
    state: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(200))
    split_sha256: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(500))
    # One recorded evaluation per training run: the registrar's redeliveries find it.
    training_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    request_id: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(200))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    inference: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None: not recorded (older rows)
    failure_kind: Mapped[str] = mapped_column(String(64))
    failure_message: Mapped[str] = mapped_column(Text)
    cancel_reason: Mapped[str] = mapped_column(Text)
    job_published: Mapped[bool] = mapped_column(Boolean)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer)
