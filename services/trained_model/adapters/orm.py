"""SQLAlchemy tables owned by trained_model (no other service reads them)."""

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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UTCDateTime, naming_metadata

metadata = naming_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class TrainedModelRow(Base):
    __tablename__ = "trained_models"
    __table_args__ = (
        UniqueConstraint("display_name", "version", name="uq_trained_models_display_name_version"),
        UniqueConstraint("owner", "import_request_id", name="uq_trained_models_owner_import_request_id"),
        Index("ix_trained_models_create_time_id", "create_time", "id"),
        Index("ix_trained_models_bbox_map_id", "bbox_map", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    # One model per successful run, whatever is redelivered: the database enforces it.
    training_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    base_model_id: Mapped[str | None] = mapped_column(String(36), index=True)
    dataset: Mapped[str] = mapped_column(String(500), index=True)
    dataset_snapshot_sha256: Mapped[str] = mapped_column(String(64))
    # The dataset version's split sha256 (empty for a plain dataset reference or an import).
    split_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The plain dataset reference its run was created with (``dataset`` is then its implicit version).
    dataset_reference: Mapped[str] = mapped_column(String(500), default="", server_default="", index=True)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    model_template: Mapped[str] = mapped_column(String(100), index=True)
    config_text: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_sha256: Mapped[str] = mapped_column(String(64))
    checkpoint_uri: Mapped[str] = mapped_column(String(1000))
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON)
    bbox_map: Mapped[float | None] = mapped_column(Float)
    training_seconds: Mapped[float] = mapped_column(Float)
    parameter_count: Mapped[int] = mapped_column(BigInteger)
    framework_versions: Mapped[dict[str, str]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    epochs: Mapped[int] = mapped_column(Integer)
    learning_rate: Mapped[float] = mapped_column(Float)
    average_loss: Mapped[float] = mapped_column(Float)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    published: Mapped[bool] = mapped_column(Boolean, index=True)
    published_by: Mapped[str] = mapped_column(String(200))
    publish_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer)
    import_request_id: Mapped[str | None] = mapped_column(String(200))
    # The champion gate's decision of the model's last gated publication (audit).
    publish_decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelAliasRow(Base):
    """An alias of a family (display name) points at one model: the primary key makes it unique."""

    __tablename__ = "model_aliases"

    display_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(36), index=True)
