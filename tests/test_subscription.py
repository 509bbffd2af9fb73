"""Subscriptions: the specification's semantics, threads, and other processes."""

from __future__ import annotations

import collections
import logging
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from qdataset import DataSet, ParamSpec, UnknownSubscriptionError, connect
from qdataset.subscription import Subscription


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or timeout (generous: a slow shared machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Recorder:
    """A callback that records (time, length, completed, state, dataset) per call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[float, int, bool, object, object]] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, dataset, length, state) -> None:
        entered = time.monotonic()
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        if self.delay:
            time.sleep(self.delay)
        completed = dataset.is_marked_complete
        with self._lock:
            self.calls.append((entered, length, completed, state, dataset))
            self.active -= 1

    @property
    def lengths(self) -> list[int]:
        return [c[1] for c in self.calls]

    @property
    def last_is_final(self) -> bool:
        """The last call saw the run completed."""
        return bool(self.calls) and self.calls[-1][2]


#: Final calls the notifier dispatched, per subscription id (observed by wrapping
#: Subscription.dispatch, so production code keeps no test-only counters).
FINAL_DISPATCHES: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def count_final_dispatches(monkeypatch):
    real = Subscription.dispatch

    def dispatch(sub):
        if sub.known_completed:
            FINAL_DISPATCHES[sub.id] += 1
        real(sub)

    monkeypatch.setattr(Subscription, "dispatch", dispatch)


def finished(rec: Recorder, sub) -> bool:
    """The completion call has returned (set only after the callback recorded it)."""
    return sub.finished


def settle(store, writer_url: str | None = None, rounds: int = 3) -> None:
    """Return once ``store``'s notifier has run ``rounds`` more news -> dispatch -> delivery
    cycles, each proven by a probe subscription on a fresh run being called.

    This replaces "sleep and hope nothing more comes": a call the notifier still owed
    (or wrongly meant to make) is dispatched in the first pass that dispatches the
    probe, since every pass dispatches every due subscription, and its idle delivery
    thread has had three full cycles to make it, however slow the machine.  With
    ``writer_url`` the probe is written through another store, so every cycle includes
    a database poll by ``store``'s notifier (the path of subscribers to other processes).
    """
    writer = connect(writer_url) if writer_url else store
    try:
        probe = DataSet("probe", [ParamSpec("p", np.float64)], store=writer)
        view = probe if writer is store else store.read_dataset(probe.id)
        seen = Recorder()
        sub = view.subscribe(seen, min_wait=0)
        for n in range(1, rounds + 1):
            probe.add_result(p=float(n))
            probe.flush()
            assert wait_for(lambda n=n: max(seen.lengths, default=0) >= n), \
                f"the notifier made no progress (probe round {n})"
        view.unsubscribe(sub)
    finally:
        if writer is not store:
            writer.close()


def assert_one_final_call(rec: Recorder, sub, length: int, store,
                          writer_url: str | None = None) -> None:
    """Exactly one final call, the last one, carrying the final length."""
    settle(store, writer_url)  # a second final call would have been made by now
    assert sub.finished
    assert FINAL_DISPATCHES[sub.id] == 1
    assert rec.lengths[-1] == length
    assert rec.last_is_final


@pytest.fixture
def ds(store):
    return DataSet("live", [ParamSpec("x", np.float64)], store=store)


def test_callback_gets_the_dataset_its_length_and_state(ds):
    rec = Recorder()
    token = object()
    ds.subscribe(rec, min_wait=0, state=token)
    ds.add_result(x=1.0)
    ds.flush()
    assert wait_for(lambda: rec.calls)
    _, length, _, state, dataset = rec.calls[0]
    assert dataset is ds
    assert state is token
    assert length == 1


def test_state_defaults_to_none(ds):
    rec = Recorder()
    sub = ds.subscribe(rec, min_wait=0)
    ds.add_result(x=1.0)
    ds.mark_completed()
    assert wait_for(lambda: finished(rec, sub))
    assert rec.calls and all(c[3] is None for c in rec.calls)


def pace(pacer: Recorder, length: int) -> None:
    """Wait until ``pacer`` (min_wait=0, min_count=1 on the same run) was told of ``length``.

    The notifier learns a run's news for all its subscriptions at once and judges every
    one of them in the pass that dispatches the pacer, so by then each subscription has
    had its chance to be called (wrongly or not) for that step.
    """
    assert wait_for(lambda: max(pacer.lengths, default=0) >= length)


def test_min_count_is_respected_and_final_call_comes_once(ds):
    rec, pacer = Recorder(), Recorder()
    sub = ds.subscribe(rec, min_wait=0, min_count=10)
    ds.subscribe(pacer, min_wait=0)
    for i in range(95):
        ds.add_result(x=float(i))
        if i % 3 == 0:
            ds.flush()
            pace(pacer, i + 1)  # every 3-row step is judged: a chance for a premature call
    ds.mark_completed()
    assert wait_for(lambda: finished(rec, sub))
    assert_one_final_call(rec, sub, 95, ds.store)
    assert len(rec.lengths) >= 4  # intermediate calls were made, so the loop checks something
    previous = 0
    for length in rec.lengths[:-1]:
        assert length - previous >= 10
        previous = length
    assert rec.lengths[-1] == 95


def test_final_call_ignores_min_count_and_min_wait(ds):
    rec = Recorder()
    sub = ds.subscribe(rec, min_wait=60_000, min_count=1_000_000)
    ds.add_result(x=1.0)
    ds.add_result(x=2.0)
    ds.mark_completed()
    assert wait_for(lambda: finished(rec, sub))
    assert_one_final_call(rec, sub, 2, ds.store)
    assert rec.lengths == [2]


@pytest.mark.slow
def test_min_wait_spaces_the_calls(ds):
    rec = Recorder()
    sub = ds.subscribe(rec, min_wait=200, min_count=1)
    deadline = time.monotonic() + 1.5
    i = 0
    while time.monotonic() < deadline:
        ds.add_result(x=float(i))
        ds.flush()
        i += 1
        time.sleep(0.005)
    ds.mark_completed()
    assert wait_for(lambda: finished(rec, sub))
    times = [c[0] for c in rec.calls[:-1]]  # the final call is exempt
    assert len(times) >= 2
    gaps = np.diff(times)
    # Never more often than min_wait; 20% slack for thread wake-up jitter on a busy machine.
    assert gaps.min() >= 0.2 * 0.8, gaps


def test_lengths_never_decrease_and_calls_never_overlap(ds):
    rec, pacer = Recorder(delay=0.03), Recorder()
    sub = ds.subscribe(rec, min_wait=0, min_count=1)
    ds.subscribe(pacer, min_wait=0)
    # Keep writing, each flush seen by the notifier before the next, until `rec` has been
    # called five times: news keeps arriving while its 30 ms calls run, so a second,
    # overlapping call would be made if the notifier allowed one.
    n = 0
    while n < 300 or len(rec.calls) < 5:
        assert n < 100_000, "the subscriber is not being called"
        ds.add_result(x=float(n))
        n += 1
        if n % 10 == 0:
            ds.flush()
            pace(pacer, n)
    ds.mark_completed()
    assert wait_for(lambda: finished(rec, sub))
    assert_one_final_call(rec, sub, n, ds.store)
    assert rec.max_active == 1
    assert rec.lengths == sorted(rec.lengths)


def test_unsubscribe_stops_calls(ds):
    rec = Recorder()
    sub = ds.subscribe(rec, min_wait=0)
    ds.add_result(x=1.0)
    ds.flush()
    assert wait_for(lambda: rec.calls)
    ds.unsubscribe(sub)
    count = len(rec.calls)
    # A subscription made after the unsubscribe: the notifier learns of the new rows and
    # the completion for all of the run's subscriptions at once and dispatches every due
    # one in the same pass, so once this one has had its final call (and the notifier
    # has gone round a few more times), a call to the removed one would have been made.
    witness = Recorder()
    ds.subscribe(witness, min_wait=0)
    for i in range(20):
        ds.add_result(x=float(i))
    ds.mark_completed()
    assert wait_for(lambda: witness.last_is_final)
    settle(ds.store)
    assert len(rec.calls) == count


def test_unsubscribe_rejects_foreign_ids(ds, store):
    other = DataSet("other", [ParamSpec("x", np.float64)], store=store)
    sub = other.subscribe(Recorder())
    with pytest.raises(UnknownSubscriptionError):
        ds.unsubscribe(sub)
    with pytest.raises(UnknownSubscriptionError):
        ds.unsubscribe("sub-1")


def test_raising_callback_is_logged_and_harms_nobody(ds, caplog):
    def broken(dataset, length, state):
        raise RuntimeError("plot window closed")

    rec = Recorder()
    with caplog.at_level(logging.ERROR, logger="qdataset"):
        sub = ds.subscribe(broken, min_wait=0)
        good = ds.subscribe(rec, min_wait=0)
        for i in range(50):
            ds.add_result(x=float(i))
            ds.flush()
        ds.mark_completed()
        assert wait_for(lambda: finished(rec, good))
        assert sub.wait_finished(10)
    assert_one_final_call(rec, good, 50, ds.store)
    assert ds.get_data("x")[0].tolist() == [float(i) for i in range(50)]
    messages = [r.getMessage() for r in caplog.records]
    assert any(sub.id in m and "raised" in m for m in messages)


def test_slow_subscriber_blocks_neither_writer_nor_others(ds):
    release = threading.Event()

    def stuck(dataset, length, state):
        release.wait(20)

    fast = Recorder()
    ds.subscribe(stuck, min_wait=0)
    sub = ds.subscribe(fast, min_wait=0)
    for i in range(2000):  # would hang here if the writer waited for `stuck`
        ds.add_result(x=float(i))
        if i % 100 == 0:
            ds.flush()
    ds.mark_completed()
    assert wait_for(lambda: finished(fast, sub))
    assert_one_final_call(fast, sub, 2000, ds.store)
    release.set()


def test_subscribing_to_a_completed_run_gives_one_final_call(ds):
    ds.add_result(x=1.0)
    ds.mark_completed()
    rec = Recorder()
    sub = ds.subscribe(rec, min_wait=100)
    assert wait_for(lambda: finished(rec, sub))
    assert_one_final_call(rec, sub, 1, ds.store)
    assert len(rec.calls) == 1


def test_close_stops_threads_without_hanging(store_url):
    before = set(threading.enumerate())
    store = connect(store_url, flush_interval=0.05)
    ds = DataSet("live", [ParamSpec("x", np.float64)], store=store)
    local_rec, remote_rec = Recorder(), Recorder()
    ds.subscribe(local_rec, min_wait=0)
    remote_store = connect(store_url)
    remote_store.read_dataset(ds.id).subscribe(remote_rec, min_wait=10)
    ds.add_result(x=1.0)
    ds.flush()
    assert wait_for(lambda: 1 in remote_rec.lengths)  # the remote notifier polls
    ours = [t for t in threading.enumerate() if t not in before and t.name.startswith("qdataset")]
    assert len(ours) >= 4  # two notifiers and two delivery threads, at least
    started = time.monotonic()
    store.close()
    remote_store.close()
    assert time.monotonic() - started < 10
    assert [t.name for t in ours if t.is_alive()] == []


def test_interpreter_exit_with_live_subscription_does_not_hang(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np, qdataset
        store = qdataset.connect({str(tmp_path / 'exit.db')!r})
        ds = qdataset.DataSet("exit", [qdataset.ParamSpec("x", np.float64)], store=store)
        calls = []
        ds.subscribe(lambda d, n, s: calls.append(n), min_wait=0)
        for i in range(100):
            ds.add_result(x=float(i))
        ds.mark_completed()
        # no close(): atexit must flush and stop the threads
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.slow
def test_three_subscribers_under_100k_rows(ds):
    """Stress: each subscriber sees non-decreasing lengths and the final length once."""
    recorders = [Recorder(), Recorder(delay=0.01), Recorder()]
    subs = [
        ds.subscribe(recorders[0], min_wait=0, min_count=1),
        ds.subscribe(recorders[1], min_wait=50, min_count=1000),
        ds.subscribe(recorders[2], min_wait=200, min_count=5000),
    ]
    for i in range(100_000):
        ds.add_result(x=float(i))
    ds.mark_completed()
    pairs = list(zip(recorders, subs, strict=True))
    assert wait_for(lambda: all(finished(r, s) for r, s in pairs), timeout=30)
    for rec, sub in pairs:
        assert_one_final_call(rec, sub, 100_000, ds.store)
        assert rec.lengths == sorted(rec.lengths)
    assert ds.length == 100_000


WRITER = """
import sys, time
import numpy as np
import qdataset
store = qdataset.connect(sys.argv[1], flush_interval=0.05)
ds = store.resume_dataset(sys.argv[2])  # the test's setup store let it go
sys.stdin.readline()  # wait until the subscriber is ready
for i in range(int(sys.argv[3])):
    ds.add_result(x=float(i))
    if i % 20 == 0:
        time.sleep(0.01)
ds.mark_completed()
store.close()
"""


@pytest.mark.slow
def test_subscriber_in_another_process_sees_rows_and_completion(store_url):
    with connect(store_url) as setup:
        run_id = DataSet("remote", [ParamSpec("x", np.float64)], store=setup).id
    reader_store = connect(store_url)
    try:
        view = reader_store.read_dataset(run_id)
        rec = Recorder()
        cursor = view.cursor(0)
        seen: list[float] = []
        sub = view.subscribe(
            lambda d, n, s: (seen.extend(cursor.read("x")[0]), rec(d, n, s)), min_wait=50)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, store_url, run_id, "500"],
                                  stdin=subprocess.PIPE)
        writer.communicate(b"go\n", timeout=60)
        assert writer.returncode == 0
        assert wait_for(lambda: finished(rec, sub), timeout=20)
        assert_one_final_call(rec, sub, 500, reader_store, store_url)
        assert rec.lengths == sorted(rec.lengths)
        assert len(rec.calls) >= 2  # saw progress before completion, not only the end
        assert seen == [float(i) for i in range(500)]
    finally:
        reader_store.close()


def schema_objects(url: str) -> set[tuple[str, str]]:
    """Every object in the store's database (or PostgreSQL schema): (kind, name).

    Read through a plain SQLAlchemy engine of the same database, not through qdataset.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = conn.exec_driver_sql("SELECT type, name FROM sqlite_master").all()
            else:  # relations (tables, indexes, sequences, views), triggers, functions
                rows = conn.exec_driver_sql("""
                    SELECT 'relation ' || relkind::text, relname::text FROM pg_class
                     WHERE relnamespace = current_schema()::regnamespace
                    UNION ALL
                    SELECT 'trigger', t.tgname::text FROM pg_trigger t
                      JOIN pg_class c ON c.oid = t.tgrelid
                     WHERE c.relnamespace = current_schema()::regnamespace
                       AND NOT t.tgisinternal
                    UNION ALL
                    SELECT 'function', proname::text FROM pg_proc
                     WHERE pronamespace = current_schema()::regnamespace""").all()
    finally:
        engine.dispose()
    return {(kind, name) for kind, name in rows}


def raw_no_op_update(url: str, run_id: str) -> None:
    """An UPDATE that changes nothing, on ``run_id``'s results, from a raw connection."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            table, pk = conn.execute(
                sa.text("SELECT results_table, pk FROM runs WHERE run_id = :id"),
                {"id": run_id}).one()
            conn.exec_driver_sql(f'UPDATE "{table}" SET "x" = "x" WHERE "_qd_run" = {pk}')
    finally:
        engine.dispose()


def test_subscriber_leaves_nothing_in_the_database(store_url):
    """Subscribing (locally and from another store, which polls) creates no triggers, tables
    or functions, and neither does completing the run: the results table's completion lock
    exists from the start and really rejects writes from a connection that is not
    qdataset's once the run is completed.  Checked on the test's own engine."""
    store = connect(store_url)
    remote_store = connect(store_url)
    try:
        ds = DataSet("clean", [ParamSpec("x", np.float64)], store=store)
        ds.add_result(x=1.0)
        ds.flush()
        before = schema_objects(store_url)
        assert ("table", "runs") in before or ("relation r", "runs") in before  # not empty
        local, remote = Recorder(), Recorder()
        ds.subscribe(local, min_wait=0)
        remote_store.read_dataset(ds.id).subscribe(remote, min_wait=10)
        ds.add_result(x=2.0)
        ds.flush()
        # Both subscriptions are live (the remote one has polled and seen row 2).
        assert wait_for(lambda: 2 in local.lengths and 2 in remote.lengths)
        assert schema_objects(store_url) == before
        raw_no_op_update(store_url, ds.id)  # the open run accepts raw writes

        ds.mark_completed()
        assert wait_for(lambda: local.last_is_final and remote.last_is_final)
        assert schema_objects(store_url) == before  # schema objects grow with layouts only
        locks = {name for kind, name in before if kind == "trigger" and "_lock_" in name}
        assert len(locks) >= 3, before  # insert, update and delete of the results table
        with pytest.raises(sa.exc.DBAPIError, match="completed"):
            raw_no_op_update(store_url, ds.id)
    finally:
        remote_store.close()
        store.close()
    assert schema_objects(store_url) == before  # closing left nothing either


def test_subscribers_make_the_writer_flush_sooner(store_url):
    """With a 30 s flush interval, a subscriber with min_wait=50 ms still hears within seconds."""
    store = connect(store_url, flush_interval=30)
    try:
        ds = DataSet("eager", [ParamSpec("x", np.float64)], store=store)
        rec = Recorder()
        ds.subscribe(rec, min_wait=50)
        ds.add_result(x=1.0)  # no explicit flush, no read
        assert wait_for(lambda: rec.calls, timeout=10)
        assert rec.lengths[0] == 1
    finally:
        store.close()


def test_cursor_read_in_a_callback_does_not_force_a_flush(store_url):
    """A callback's read returns what was announced and leaves the buffer to the writer;
    outside callbacks a read on the writing DataSet still flushes (read your writes)."""
    store = connect(store_url, flush_interval=30)
    try:
        ds = DataSet("quiet", [ParamSpec("x", np.float64)], store=store)
        view = store.read_dataset(ds.id)  # another connection: sees stored rows only
        cursor = ds.cursor(0)
        more_added, done = threading.Event(), threading.Event()
        seen: dict[str, object] = {}

        def callback(dataset, length, state):
            if "length" in seen:
                return  # the final call
            more_added.wait(10)  # three more rows now sit in the writer's buffer
            (xs,) = cursor.read("x")
            seen.update(length=length, read=xs.tolist(), stored=view.length)
            done.set()

        ds.subscribe(callback, min_wait=60_000)  # the first call is not throttled
        for i in range(5):
            ds.add_result(x=float(i))
        ds.flush()  # announces 5 rows
        for i in range(5, 8):
            ds.add_result(x=float(i))
        more_added.set()
        assert done.wait(10)
        assert seen["length"] == 5
        assert seen["read"] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert seen["stored"] == 5  # the callback's read wrote nothing
        assert cursor.read("x")[0].tolist() == [5.0, 6.0, 7.0]  # main thread: flushes
        assert view.length == 8
        ds.mark_completed()
    finally:
        store.close()


def test_a_callback_that_keeps_raising_is_logged_once_a_minute(ds, caplog, monkeypatch):
    """First error: logged with traceback and subscription id; then at most one
    report per minute (a fake clock moves time on), each counting what it held back."""
    import qdataset.subscription as subscription

    now = [1000.0]
    monkeypatch.setattr(subscription, "error_clock", lambda: now[0])
    calls: list[int] = []

    def broken(dataset, length, state):
        calls.append(length)
        raise RuntimeError("plot window closed")

    def call_once() -> None:
        expected = len(calls) + 1
        ds.add_result(x=float(expected))
        ds.flush()
        assert wait_for(lambda: len(calls) == expected and not sub.busy)

    def reports() -> list[logging.LogRecord]:
        return [r for r in caplog.records if sub.id in r.getMessage()]

    with caplog.at_level(logging.ERROR, logger="qdataset"):
        sub = ds.subscribe(broken, min_wait=0)
        for _ in range(30):
            call_once()
        (first,) = reports()
        assert first.exc_info is not None and first.exc_info[0] is RuntimeError
        assert "raised" in first.getMessage()
        now[0] += 59.0  # still within the minute
        for _ in range(10):
            call_once()
        assert len(reports()) == 1
        now[0] += 2.0  # a minute and a second after the first report
        call_once()
        first, second = reports()
        assert second.exc_info is not None
        assert "39 more errors" in second.getMessage()  # calls 2..40 were held back
        for _ in range(5):
            call_once()
        assert len(reports()) == 2
        ds.mark_completed()
        assert sub.wait_finished(10)
    *_, last = reports()
    assert len(reports()) == 3  # the final call is always reported, with the count
    assert "5 more errors" in last.getMessage()
    assert len(calls) == 47


def test_held_back_callback_errors_are_counted_on_unsubscribe(ds, caplog, monkeypatch):
    import qdataset.subscription as subscription

    monkeypatch.setattr(subscription, "error_clock", lambda: 5.0)  # time stands still
    calls: list[int] = []

    def broken(dataset, length, state):
        calls.append(length)
        raise ValueError("bad fit")

    with caplog.at_level(logging.ERROR, logger="qdataset"):
        sub = ds.subscribe(broken, min_wait=0)
        for i in range(4):
            ds.add_result(x=float(i))
            ds.flush()
            assert wait_for(lambda i=i: len(calls) == i + 1 and not sub.busy)
        ds.unsubscribe(sub)
        assert wait_for(lambda: len([r for r in caplog.records if sub.id in r.getMessage()])
                        == 2)
    messages = [r.getMessage() for r in caplog.records if sub.id in r.getMessage()]
    assert "3 more errors" in messages[1]
