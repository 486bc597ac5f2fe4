"""What users ask of datasets: create, read, list, delete datasets; create (from a URL or an upload), read,
list, delete and watch versions. Each use case loads through a unit of work, calls domain methods, commits."""

from __future__ import annotations

import asyncio
import builtins
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common import page_tokens
from common.auth import Permission, Principal
from common.errors import Aborted, FieldViolation, InvalidArgument, NotFound, PermissionDenied, require
from common.page_tokens import Cursor
from common.retry import CONFLICTS, Failures
from services.training_run.adapters.repository import ConcurrentUpdate, DuplicateRequest
from services.training_run.domain.datasets import Dataset, DatasetVersion, Snapshot, VersionState
from services.training_run.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.training_run.service_layer.validation import printable_text

DATASET_NAME = re.compile(r"^datasets/([A-Za-z0-9_-]{1,36})$")
VERSION_NAME = re.compile(r"^datasets/([A-Za-z0-9_-]{1,36})/versions/([1-9][0-9]{0,8})$")
DEFAULT_SPLIT = {"train_fraction": 0.7, "val_fraction": 0.2, "seed": 0}
Page = tuple[builtins.list[Any], str, int]


def parse_dataset_name(name: str, field: str = "name") -> str:
    match = DATASET_NAME.match(name or "")
    if not match:
        raise InvalidArgument(
            f"{field} must look like 'datasets/{{id}}', got {name[:200]!r}",
            [FieldViolation(field, "must look like 'datasets/{id}'")],
        )
    return match.group(1)


def parse_version_name(name: str, field: str = "name") -> tuple[str, int]:
    match = VERSION_NAME.match(name or "")
    if not match:
        raise InvalidArgument(
            f"{field} must look like 'datasets/{{id}}/versions/{{n}}', got {name[:200]!r}",
            [FieldViolation(field, "must look like 'datasets/{id}/versions/{n}' (n from 1)")],
        )
    return match.group(1), int(match.group(2))


def split_options(given: dict[str, Any], field: str) -> dict[str, Any]:
    """The options with defaults filled in, or InvalidArgument naming each bad one."""
    options = {**DEFAULT_SPLIT, **given}
    violations = []
    for key in ("train_fraction", "val_fraction"):
        if not 0 < options[key] < 1:
            violations.append(FieldViolation(f"{field}.{key}", f"must be in (0, 1), got {options[key]}"))
    if options["train_fraction"] + options["val_fraction"] > 1 + 1e-9:
        violations.append(
            FieldViolation(f"{field}.val_fraction", "train_fraction + val_fraction must be <= 1")
        )
    if not 0 <= options["seed"] <= 2**31 - 1:
        violations.append(FieldViolation(f"{field}.seed", "must be in 0..2147483647"))
    require(violations)
    return options


@dataclass(frozen=True)
class NewVersion:
    parent: str
    description: str
    split_options: dict[str, Any]  # as given (set fields only)
    request_id: str
    source_uri: str = ""
    upload: dict[str, str | int] | None = None
    field_prefix: str = ""  # "metadata." for an upload: where the fields sit in the request


@dataclass(frozen=True)
class DatasetView:
    dataset: Dataset
    version_count: int
    newest: int


class DatasetService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._clock = clock

    # ---- datasets ------------------------------------------------------------------------------------------
    async def create_dataset(
        self, principal: Principal, display_name: str, description: str, request_id: str
    ) -> DatasetView:
        principal.require(Permission.CREATE_DATASETS)
        violations = printable_text(display_name, "dataset.display_name", 200, required=True)
        violations += printable_text(description, "dataset.description", 2000, required=False)
        violations += printable_text(request_id, "request_id", 200, required=False)
        require(violations)
        now = self._clock()
        dataset = Dataset(
            uuid.uuid4().hex, principal.subject, display_name, now, description, request_id, now
        )
        async with self._uow() as uow:
            if request_id and (found := await uow.datasets.get_by_request_id(principal.subject, request_id)):
                return await self._view(uow, found)
            try:
                await uow.datasets.add(dataset)
            except DuplicateRequest:
                raise Aborted(
                    f"another CreateDataset with request_id {request_id!r} is in progress; retry"
                ) from None
            await uow.commit()
        return DatasetView(dataset, 0, 0)

    async def get_dataset(self, principal: Principal, name: str) -> DatasetView:
        async with self._uow() as uow:
            return await self._view(uow, await self._visible(uow, principal, parse_dataset_name(name)))

    async def list_datasets(self, principal: Principal, page_size: int, page_token: str) -> Page:
        size = _page_size(page_size)
        sees_all = principal.is_superadmin or principal.has(Permission.VIEW_ALL_DATASETS)
        owner = None if sees_all else principal.subject
        fingerprint = page_tokens.fingerprint(("datasets", owner, principal.subject))
        after = _keyset(page_tokens.decode_cursor(page_token, fingerprint))
        async with self._uow() as uow:
            found = await uow.datasets.list(owner, after, size + 1)
            total = await uow.datasets.count(owner)
            views = [await self._view(uow, d) for d in found[:size]]
        token = _next_token(found, size, fingerprint)
        return views, token, total

    async def delete_dataset(self, principal: Principal, name: str) -> None:
        async with self._uow() as uow:
            dataset = await self._owned(uow, principal, parse_dataset_name(name))
            names = await uow.datasets.version_names(dataset.id)
            for version_name in names:
                _, number = parse_version_name(version_name)
                version = await uow.datasets.get_version(dataset.id, number)
                if version is not None:
                    version.ensure_deletable(await uow.datasets.runs_using([version_name]))
            await uow.datasets.delete(dataset.id)
            await uow.commit()

    # ---- versions ------------------------------------------------------------------------------------------
    async def create_version(
        self, principal: Principal, new: NewVersion, pin: Callable[[], Snapshot]
    ) -> DatasetVersion:
        """Check the request, pin the files (``pin`` runs in a thread), then store the version, or return the
        one with the same snapshot and split options (content addressing) or the same request_id."""
        principal.require(Permission.CREATE_DATASETS)
        at = new.field_prefix
        dataset_id = parse_dataset_name(new.parent, at + "parent")
        violations = printable_text(new.description, at + "dataset_version.description", 2000, required=False)
        violations += printable_text(new.request_id, at + "request_id", 200, required=False)
        require(violations)
        options = split_options(new.split_options, at + "dataset_version.split_options")
        async with self._uow() as uow:
            await self._owned(uow, principal, dataset_id)
            if new.request_id and (
                found := await uow.datasets.version_by_request_id(dataset_id, new.request_id)
            ):
                return found
        snapshot = await asyncio.to_thread(pin)
        conflicts = Failures(CONFLICTS)
        while True:
            try:
                return await self._store_version(principal, dataset_id, new, options, snapshot)
            except (ConcurrentUpdate, DuplicateRequest):
                if not await conflicts.failed():
                    raise Aborted("the dataset is changing too often; retry") from None

    async def _store_version(
        self,
        principal: Principal,
        dataset_id: str,
        new: NewVersion,
        options: dict[str, Any],
        snapshot: Snapshot,
    ) -> DatasetVersion:
        async with self._uow() as uow:
            dataset = await self._owned(uow, principal, dataset_id)
            if new.request_id and (
                found := await uow.datasets.version_by_request_id(dataset_id, new.request_id)
            ):
                return found
            for existing in await uow.datasets.versions_with_snapshot(dataset_id, snapshot.sha256):
                if existing.reusable_for(options):
                    return existing
            now = self._clock()
            version = DatasetVersion.create(
                id=uuid.uuid4().hex, dataset=dataset, owner=principal.subject, snapshot=snapshot, now=now,
                split_options=options, description=new.description, source_uri=new.source_uri,
                upload=new.upload, request_id=new.request_id,
            )  # fmt: skip
            await uow.datasets.save(dataset)
            await uow.datasets.add_version(version)
            await uow.commit()
            return version

    async def get_version(self, principal: Principal, name: str) -> DatasetVersion:
        dataset_id, number = parse_version_name(name)
        async with self._uow() as uow:
            return await self._visible_version(uow, principal, dataset_id, number)

    async def list_versions(
        self, principal: Principal, parent: str, states: tuple[int, ...], page_size: int, page_token: str
    ) -> Page:
        dataset_id = parse_dataset_name(parent, "parent")
        size = _page_size(page_size)
        bad = [s for s in states if s not in VersionState._value2member_map_ or s == 0]
        if bad:
            raise InvalidArgument("unknown state filter", [FieldViolation("states", f"unknown values {bad}")])
        wanted = tuple(sorted(set(states)))
        fingerprint = page_tokens.fingerprint(("versions", dataset_id, wanted, principal.subject))
        after = _keyset(page_tokens.decode_cursor(page_token, fingerprint))
        async with self._uow() as uow:
            await self._visible(uow, principal, dataset_id)
            found = await uow.datasets.list_versions(dataset_id, wanted, after, size + 1)
            total = await uow.datasets.count_versions(dataset_id, wanted)
        return found[:size], _next_token(found, size, fingerprint), total

    async def delete_version(self, principal: Principal, name: str) -> None:
        dataset_id, number = parse_version_name(name)
        async with self._uow() as uow:
            version = await self._visible_version(uow, principal, dataset_id, number)
            await self._owned(uow, principal, dataset_id)
            version.ensure_deletable(await uow.datasets.runs_using([version.name]))
            await uow.datasets.delete_version(version)
            await uow.commit()

    async def watch(
        self,
        principal: Principal,
        name: str,
        after: int,
        feed: Callable[[str, int, int], AsyncIterator[Any | None]],
    ) -> AsyncIterator[tuple[Any, DatasetVersion]]:
        """The version's events after ``after`` (stored, then live), each with the version as stored when the
        event is delivered; ends after the event that makes it READY or INVALID, or once the stored events
        are replayed when it already was."""
        dataset_id, number = parse_version_name(name)
        async with self._uow() as uow:
            version = await self._visible_version(uow, principal, dataset_id, number)
            finished = version.state.final and not await uow.has_unsent_messages(version.id)
        async for event in feed(dataset_id, number, after):
            if event is None:
                if finished:
                    return
                continue
            async with self._uow() as uow:
                version = await uow.datasets.get_version(dataset_id, number) or version
            yield event, version
            ended = event.WhichOneof("payload") == "state_changed"
            if ended and VersionState(event.state_changed.to_state).final:
                return

    async def check_owned(self, principal: Principal, parent: str, field: str = "parent") -> None:
        async with self._uow() as uow:
            await self._owned(uow, principal, parse_dataset_name(parent, field))

    # ---- access --------------------------------------------------------------------------------------------
    async def _view(self, uow: UnitOfWork, dataset: Dataset) -> DatasetView:
        count, newest = await uow.datasets.version_summary(dataset.id)
        return DatasetView(dataset, count, newest)

    async def _visible(self, uow: UnitOfWork, principal: Principal, dataset_id: str) -> Dataset:
        return await visible_dataset(uow, principal, dataset_id)

    async def _owned(self, uow: UnitOfWork, principal: Principal, dataset_id: str) -> Dataset:
        dataset = await self._visible(uow, principal, dataset_id)
        if not (principal.is_superadmin or dataset.owner == principal.subject):
            raise PermissionDenied(f"only the owner of datasets/{dataset_id} may change it")
        return dataset

    async def _visible_version(
        self, uow: UnitOfWork, principal: Principal, dataset_id: str, number: int
    ) -> DatasetVersion:
        return await visible_version(uow, principal, dataset_id, number)


async def visible_dataset(uow: UnitOfWork, principal: Principal, dataset_id: str) -> Dataset:
    """The dataset, or NotFound when it is absent or the caller may not see it (the same answer)."""
    dataset = await uow.datasets.get(dataset_id)
    sees = dataset is not None and (
        principal.is_superadmin or principal.can_see_owner(dataset.owner, Permission.VIEW_ALL_DATASETS)
    )
    if dataset is None or not sees:
        raise NotFound(f"dataset datasets/{dataset_id} does not exist")
    return dataset


async def visible_version(
    uow: UnitOfWork, principal: Principal, dataset_id: str, number: int
) -> DatasetVersion:
    """The version, or NotFound when it, or its dataset, is absent or hidden from the caller: the rule of
    every DatasetService read, and of CreateTrainingRun's dataset_version."""
    missing = NotFound(f"dataset version datasets/{dataset_id}/versions/{number} does not exist")
    try:
        await visible_dataset(uow, principal, dataset_id)
    except NotFound:
        raise missing from None  # the same answer whether the dataset is hidden or absent
    version = await uow.datasets.get_version(dataset_id, number)
    if version is None:
        raise missing
    return version


def _page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", [FieldViolation("page_size", "must be >= 0")])
    return min(page_size or 50, 500)


def _keyset(cursor: Cursor | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(str(cursor.value)), cursor.id
    except ValueError as exc:
        raise page_tokens.invalid("is not a page token issued by this service") from exc


def _next_token(found: builtins.list[Any], size: int, fingerprint: str) -> str:
    if len(found) <= size:
        return ""
    last = found[size - 1]
    return page_tokens.encode_cursor(Cursor(last.create_time.isoformat(), last.id), fingerprint)
