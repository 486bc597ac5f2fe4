"""SQLAlchemy tables owned by trained_model (no other service reads them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from common.db import naming_metadata

metadata = naming_metadata()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both dialects (SQLite stores naive text; the zone is put back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
