"""What only the PostgreSQL spool has to show: one transaction per batch, the due index,
a streamed listing, and a clear line when the database cannot be reached.

Real PostgreSQL (the shared server, a throw-away database per session); the unreachable
case uses a closed loopback port. The guarantees every backend gives are in
``test_conformance.py``, which runs against this backend too.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from mailpipe.core.errors import SpoolFull
from mailpipe.spool import spool_at
from mailpipe.spool.pg import DUE, PostgresSpool, SpoolUnavailable
from mailpipe.spool.model import State
from tests.spool.test_conformance import T0, entry
from tests.support import free_port, mailpipe

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_url):
    from tests.spool.backends import PostgresBackend
    PostgresBackend(pg_url).empty()
    spool = spool_at(pg_url)
    assert isinstance(spool, PostgresSpool)
    yield spool
    spool.close()


def test_create_many_is_one_transaction_per_batch(pg):
    first, taken = entry(), entry()
    pg.create(taken, [b"x"])
    clash = entry()
    clash.id = taken.id                       # the batch's second message cannot be stored
    errors = pg.create_many([(first, [b"a"]), (clash, [b"b"]), (entry(), [b"c"])])
    assert all(isinstance(e, SpoolFull) for e in errors)
    assert pg.ids() == [taken.id]             # nothing of the batch, not even the message before the clash
    batch = [(entry(), [b"%d" % i]) for i in range(3)]
    assert pg.create_many(batch) == [None] * 3
    assert sorted(pg.ids()) == sorted([taken.id] + [e.id for e, _ in batch])


def test_due_is_answered_from_the_state_next_attempt_index(pg, pg_url):
    batch = []
    for i in range(2000):
        e = entry(at=T0 + i)
        e.state, e.stage = (State.DEFERRED, "remote") if i % 10 == 0 else (State.ACTIVE, "route")
        e.next_attempt = T0 + i if e.state == State.DEFERRED else None
        batch.append((e, [b"x"]))
    assert pg.create_many(batch) == [None] * 2000
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE spool_entry"))
        plan = "\n".join(conn.execute(text(f"EXPLAIN {DUE.text}"), {"now": T0 + 50, "limit": 1000}).scalars())
    engine.dispose()
    assert "spool_entry_due" in plan and "Seq Scan" not in plan, plan
    assert pg.due(T0 + 50) == [e.id for e, _ in batch[:51:10]]


def test_listing_streams_from_a_server_side_cursor(pg, pg_url):
    for _ in range(3):
        pg.create(entry(), [b"x"])
    rows = pg.listing()
    next(rows)                                # suspended mid-listing: the cursor is open on the server
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        open_cursors = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND state = 'idle in transaction' AND query LIKE 'FETCH FORWARD%'")).scalar()
    engine.dispose()
    assert open_cursors == 1
    assert len(list(rows)) == 2


def test_unreachable_database_is_one_line_naming_the_url_without_its_password(tmp_path):
    port = free_port()
    url = f"postgresql+psycopg://mailer:s3cret@127.0.0.1:{port}/spool"
    with pytest.raises(SpoolUnavailable) as caught:
        spool_at(url)
    assert f"127.0.0.1:{port}/spool" in str(caught.value) and "s3cret" not in str(caught.value)
    (tmp_path / "data").mkdir()
    (tmp_path / "mailpipe.toml").write_text(f'broker_url = "spool://"\nspool_url = "{url}"\n'
                                            f'[metrics]\nport = {free_port()}\n')
    for command in (["queue", "list"], ["serve"]):
        result = mailpipe(*command, config=tmp_path / "mailpipe.toml", data_dir=tmp_path / "data", check=False)
        err = result.stderr.decode()
        assert result.returncode != 0, err
        assert f"127.0.0.1:{port}/spool" in err and "s3cret" not in err and "Traceback" not in err, err
        assert [line for line in err.splitlines() if "spool" in line] == [
            f"mailpipe: spool database postgresql+psycopg://mailer:***@127.0.0.1:{port}/spool: connection failed: "
            f'connection to server at "127.0.0.1", port {port} failed: Connection refused'], err


def test_a_claim_whose_session_died_cannot_save_and_the_message_can_be_claimed_again(pg, pg_url):
    e = entry()
    pg.create(e, [b"body"])
    engine = create_engine(pg_url)
    with pg.claim(e.id) as claimed:
        assert claimed is not None
        with engine.connect() as conn:                 # the server ends the claiming session (restart, dead host)
            ended = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                      "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                      )).scalars().all()
        assert ended == [True]
        claimed.entry.state = State.DONE
        with pytest.raises(SQLAlchemyError):           # no save behind the back of a new owner
            pg.save(claimed.entry)
        other = spool_at(pg_url)
        with other.claim(e.id) as again:
            assert again is not None and again.entry.state == State.ACTIVE
        other.close()
    engine.dispose()
    with pg.claim(e.id) as claimed:                     # the dead connection went; a new one claims
        assert claimed is not None


def test_processes_opening_a_new_database_at_once_migrate_it_once():
    import multiprocessing

    from tests.spool import children
    from tests.spool.pgdb import throwaway_database
    ctx = multiprocessing.get_context("spawn")
    with throwaway_database("mptest_migrate") as url:
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=children.open_spool_at, args=(url, barrier, results), daemon=True)
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
        assert outcomes == ["opened"] * 4 and [p.exitcode for p in procs] == [0] * 4
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM mailpipe_spool_version")).scalars().all() == ["0001"]
        engine.dispose()
