"""PostgreSQL outages, simulated with a proxy of the suite's own in front of the test
server (which other tests share, so it is never stopped): while the server is away a
run fails with a StoreError within the store's timeout, the first run after it is back
succeeds at once, and nothing committed is lost."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from urllib.parse import urlsplit

import pytest

from conftest import POSTGRES_URL
from muscle_mem import StoreError
from muscle_mem.store import behind
from muscle_mem.store.postgres import PostgresStore

from .common import figures, new_world, pay, pay_engine, rounds
from .proxy import Proxy

TIMEOUT = 1.5
SLACK = 2.0  # what a loaded machine adds to a deadline
_schemas = itertools.count()


@pytest.fixture
def proxied(postgres_admin):
    """A proxy to the test server, and the URL of a schema of this test's own behind it."""
    schema = f"mm_outage_{os.getpid()}_{next(_schemas)}"
    postgres_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    postgres_admin.execute(f"CREATE SCHEMA {schema}")
    proxy = Proxy(POSTGRES_URL)
    query = urlsplit(POSTGRES_URL).query
    separator = "&" if query else "?"
    url = f"{proxy.url}{separator}options=-csearch_path%3D{schema}"
    yield proxy, url
    proxy.close()
    postgres_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def timed(call):
    start = time.monotonic()
    try:
        return call(), time.monotonic() - start
    except StoreError as error:
        return error, time.monotonic() - start


def paying(url):
    """A store at ``url`` holding ann's payment, its world and its engine."""
    store = PostgresStore(url, timeout=TIMEOUT)
    world = new_world()
    engine = pay_engine(store, world)
    assert pay(engine, "ann").status == "miss"
    return store, world, engine


@pytest.mark.parametrize("outage_s", [0.2, 2 * TIMEOUT + 1], ids=["short", "long"])
def test_a_run_fails_within_the_timeout_and_the_first_after_the_outage_succeeds(proxied, outage_s):
    proxy, url = proxied
    store, _, engine = paying(url)
    try:
        proxy.cut()
        down_since = time.monotonic()
        for payee in ("bob", "cy"):
            error, took = timed(lambda payee=payee: pay(engine, payee))
            assert isinstance(error, StoreError), error
            assert "down or unreachable" in str(error) or "lost the connection" in str(error)
            assert took < TIMEOUT + SLACK, took
        time.sleep(max(0.0, outage_s - (time.monotonic() - down_since)))
        proxy.restore()
        outcome, took = timed(lambda: pay(engine, "dee"))
        assert outcome.hit, outcome  # what was recorded before the outage is all there
        assert took < SLACK, took  # at once: no reconnection delay to wait out
        assert [run.status for run in store.runs()] == ["miss", "hit"]  # the failed: none
    finally:
        store.close()


def test_an_unreachable_server_fails_a_run_within_the_timeout(proxied):
    proxy, url = proxied
    store, _, engine = paying(url)
    try:
        proxy.cut()
        proxy.restore(stalled=True)  # connections accepted, never answered
        error, took = timed(lambda: pay(engine, "bob"))
        assert isinstance(error, StoreError) and took < TIMEOUT + SLACK, (error, took)
        proxy.cut()
        proxy.restore()
        assert pay(engine, "cy").hit
    finally:
        store.close()


def test_the_timeout_comes_from_the_url_too(proxied):
    _, url = proxied
    store = PostgresStore(f"{url}&connect_timeout=3")
    try:
        assert store.timeout == 3
    finally:
        store.close()
    store = PostgresStore(url)
    try:
        assert store.timeout == 10
    finally:
        store.close()


def test_a_server_that_stops_and_restarts_while_runs_go_on_loses_nothing(proxied):
    """A stream of runs, each recording a path of its own, while the server goes away
    and comes back again and again: every run either commits whole or fails with a
    StoreError, and what committed is all there afterwards, paths whole."""
    proxy, url = proxied
    store = PostgresStore(url, timeout=0.5)
    world = new_world()
    engine = pay_engine(store, world)
    committed, failed = [], 0
    stop = threading.Event()
    outages = itertools.count()

    def flap():
        while not stop.wait(0.6):  # up, then down for a moment
            proxy.cut()
            next(outages)
            time.sleep(0.2)
            proxy.restore()

    flapper = threading.Thread(target=flap)
    flapper.start()
    try:
        deadline = time.monotonic() + rounds(6, 60)
        number = 0
        while time.monotonic() < deadline:
            number += 1
            task = f"task {number}"
            try:
                engine(task, "ann", "200", params={"payee": "ann"})
            except StoreError:
                failed += 1
            else:
                committed.append(engine.task_key(task, "ann", "200", params={"payee": "ann"}))
    finally:
        stop.set()
        flapper.join()  # it leaves the proxy restored
    try:
        cuts = next(outages)  # how many outages there were
        assert committed and failed and cuts > 3, (len(committed), failed, cuts)
        logged = {run.task_key for run in store.runs()}
        assert set(committed) <= logged  # nothing committed was lost
        for info in store.tasks():
            tree = store.tree(info.task_key)
            assert len(tree) == 2 and any(node.terminal for node in tree)  # whole paths
    finally:
        store.close()
    figures(
        "postgres outages",
        outages=cuts,
        committed_runs=len(committed),
        failed_runs=failed,
        lost=0,
    )


def test_a_server_that_stops_answering_fails_a_run_within_the_timeout(proxied):
    """A server stopped (SIGSTOP) or cut off without its connections closing: nothing
    comes back, and TCP would wait for many minutes. The store's own deadline ends the
    wait: a StoreError within about the timeout, and the bookkeeping written behind
    stays pending, is written once the server answers again, and is written once."""
    proxy, url = proxied
    store, _, engine = paying(url)
    try:
        assert pay(engine, "bob").hit  # its bookkeeping is written behind...
        proxy.stall()  # ...maybe before the server stops answering, maybe after
        waits = []
        for call in (lambda: pay(engine, "cy"), store.runs, store.tasks):
            error, took = timed(call)
            waits.append(took)
            assert isinstance(error, StoreError), error
            # A connection of the pool waits for an answer; a new one, to connect.
            assert re.search(f"(no answer from|cannot reach) {re.escape(store.url)}", str(error))
            assert took < TIMEOUT + SLACK, took
        time.sleep(behind.FLUSH_EVERY_S + TIMEOUT)  # the writer tries, and fails, meanwhile
        proxy.resume()
        assert pay(engine, "dee").hit
        assert [run.status for run in store.runs()] == ["miss", "hit", "hit"]
        assert _hits(store) == [2, 2]  # bob's and dee's: each counted once
    finally:
        store.close()
    figures("postgres stalled", timeout_s=TIMEOUT, failed=3, slowest_s=round(max(waits), 2))


def _hits(store):
    def work(cur):
        cur.execute("SELECT hits FROM mm_nodes ORDER BY created_at")
        return [row[0] for row in cur.fetchall()]

    return store.read(work)


def test_a_run_whose_commit_acknowledgement_is_lost_is_logged_once(proxied):
    """The server commits a run and the connection drops before the client hears so:
    the store retries, and the retry finds the run's log line and writes nothing."""
    proxy, url = proxied
    store, world, engine = paying(url)
    try:
        assert pay(engine, "bob").hit
        world["page"] = "v2"  # a new environment: the next run records a path
        proxy.lose_reply_to(b"COMMIT")
        assert pay(engine, "cy").status == "miss"  # no error: the retry found it done
        assert proxy.lost == 1
        figures("lost acknowledgement, run", lost_replies=1, logged=1, counted_twice=0)
        store.runs()  # (writes bob's hit, pending until now)
        assert [run.status for run in store.runs()] == ["miss", "hit", "miss"]
        assert _hits(store) == [1, 1]  # bob's hit, counted once
        world["page"] = "v1"
        assert pay(engine, "dee").hit and pay(engine, "eve").status == "hit"
    finally:
        store.close()


def test_a_batch_written_behind_whose_acknowledgement_is_lost_counts_once(proxied):
    proxy, url = proxied
    store, _, engine = paying(url)
    try:
        for payee in ("bob", "cy"):
            # ("about" is in the hits' log lines alone: the trap springs on their batch.)
            outcome = engine("pay", payee, "200", params={"payee": payee}, about="person:trap")
            assert outcome.hit
        proxy.lose_reply_to(b"person:trap")
        runs = store.runs()  # writes the batch, loses its acknowledgement, writes it again
        assert proxy.lost == 1
        assert [run.status for run in runs] == ["miss", "hit", "hit"]
        assert _hits(store) == [2, 2]
        figures("lost acknowledgement, batch", lost_replies=1, logged=2, counted_twice=0)
    finally:
        store.close()
