"""Callers and error helpers shared by the gRPC API tests (test_api.py, test_api_delete_and_download.py)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.auth import USER_PERMISSIONS, Permission
from tests.helpers import bearer, token

USER = [
    p for p in USER_PERMISSIONS if p not in (Permission.VIEW_ALL_MODELS, Permission.VIEW_ALL_TRAINING_RUNS)
]
ALICE = bearer(token("alice", USER))
BOB = bearer(token("bob", USER))
ROOT = bearer(token("root", [*USER_PERMISSIONS, Permission.SUPERADMIN]))


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(error)
    fields = set()
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields |= {v.field for v in bad.field_violations}
    return fields
