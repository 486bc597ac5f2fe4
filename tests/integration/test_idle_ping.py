"""PostgreSQL pools ping a connection only when it sat idle (common.db.ping_when_idle): a connection that died
idle is replaced before use; one used moments ago is not pinged (no round trip more per transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from common.db import PING_IDLE_SECONDS, make_engine

PID = text("SELECT pg_backend_pid()")


async def test_a_connection_that_died_idle_is_replaced_one_used_just_now_is_not_pinged(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    pings: list[Any] = []
    records: list[Any] = []
    ping = engine.dialect.do_ping

    def counted(connection: Any) -> bool:
        pings.append(connection)
        return ping(connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign,assignment]
    event.listen(engine.sync_engine.pool, "checkin", lambda dbapi_connection, record: records.append(record))
    try:
        async with engine.connect() as connection:
            first_pid = (await connection.execute(PID)).scalar_one()
        async with engine.connect() as connection:  # checked in just now: used as it is
            assert (await connection.execute(PID)).scalar_one() == first_pid
        assert pings == []

        other = make_engine(postgres_url, pool_size=1, max_overflow=0)
        async with other.connect() as killer:
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        await other.dispose()
        records[-1].info["checked_in"] -= PING_IDLE_SECONDS  # as if it had sat idle that long
        async with engine.connect() as connection:  # pinged, found dead, replaced: the statement succeeds
            assert (await connection.execute(PID)).scalar_one() != first_pid
        assert len(pings) == 1
    finally:
        await engine.dispose()
