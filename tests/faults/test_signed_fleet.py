"""A signed fleet: a worker whose secret differs from the one the store's rows are
signed with (or that has none) refuses to write over them, with a StoreError that
says what to do, and the fleet's rows stay as they were."""

from __future__ import annotations

import warnings

import pytest

from conftest import kinds
from muscle_mem import IntegrityWarning, StoreError
from muscle_mem.portable import export_lines, import_into, read_export
from muscle_mem.store.rows import end_digest

from .common import new_world, pay, pay_engine, read, write

pytestmark = kinds("sqlite", "postgres")


def worker(stores, url, world, secret=None):
    return pay_engine(stores.open(url), world, **({"secret": secret} if secret else {}))


def quietly(call):
    """``call()``, with the IntegrityWarnings of rows another secret signed caught."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrityWarning)
        return call()


def signatures(stores, url):
    return read(stores.open(url), "SELECT id, sig FROM mm_nodes ORDER BY id")


@pytest.mark.parametrize("secret", ["another", None], ids=["another-secret", "no-secret"])
def test_a_worker_with_another_secret_refuses_to_write_over_the_fleets_rows(
    store_url, stores, secret
):
    world = new_world()
    assert pay(worker(stores, store_url, world, "fleet"), "ann").status == "miss"
    before = signatures(stores, store_url)
    stray = worker(stores, store_url, world, secret)
    world["page"] = "v2"  # something new to record: a miss
    with pytest.raises(StoreError, match=r"refusing to write to .*signed with") as raised:
        quietly(lambda: pay(stray, "bob"))
    assert "secret= or $MUSCLE_MEM_SECRET" in str(raised.value)
    assert signatures(stores, store_url) == before
    world["page"] = "v1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fleet's rows are intact and verify
        assert pay(worker(stores, store_url, world, "fleet"), "cy").hit


def test_a_worker_without_a_secret_still_replays_a_signed_store(store_url, stores):
    world = new_world()
    pay(worker(stores, store_url, world, "fleet"), "ann")
    # A hit writes counts and the run log, never a signed row: it is not refused.
    assert pay(worker(stores, store_url, world), "bob").hit


def test_an_unsigned_store_is_signed_by_the_first_secret_that_records(store_url, stores):
    world = new_world()
    pay(worker(stores, store_url, world), "ann")  # unsigned rows
    signed = worker(stores, store_url, world, "fleet")
    with pytest.warns(IntegrityWarning):
        assert pay(signed, "bob").status == "miss"  # recorded again, signed
    world["page"] = "v2"
    with pytest.raises(StoreError, match="this worker has none"):
        quietly(lambda: pay(worker(stores, store_url, world), "cy"))
    with pytest.raises(StoreError, match="another secret"):
        quietly(lambda: pay(worker(stores, store_url, world, "late"), "cy"))


def test_removing_every_tree_lets_a_new_secret_sign_the_store(store_url, stores):
    world = new_world()
    pay(worker(stores, store_url, world, "old"), "ann")
    stores.open(store_url).clear()
    assert pay(worker(stores, store_url, world, "new"), "bob").status == "miss"
    assert pay(worker(stores, store_url, world, "new"), "cy").hit


def test_a_store_signed_before_it_recorded_its_signer_is_still_refused(store_url, stores):
    world = new_world()
    pay(worker(stores, store_url, world, "fleet"), "ann")
    write(stores.open(store_url), "DELETE FROM mm_meta WHERE key = 'signed_by'")
    world["page"] = "v2"
    with pytest.raises(StoreError, match="another secret"):
        quietly(lambda: pay(worker(stores, store_url, world, "another"), "bob"))
    # The fleet's own secret verifies its rows, and the store records it again.
    assert pay(worker(stores, store_url, world, "fleet"), "cy").status == "miss"
    assert read(stores.open(store_url), "SELECT 1 FROM mm_meta WHERE key = 'signed_by'")


def test_an_import_with_another_secret_is_refused(store_url, stores):
    world = new_world()
    pay(worker(stores, store_url, world, "fleet"), "ann")
    source = stores.fresh(secret="laptop")
    laptop = pay_engine(source, new_world() | {"page": "v9"}, secret="laptop")
    pay(laptop, "bob")
    imported = read_export(list(export_lines(source, secret="laptop")), secret="laptop")
    target = stores.track(store_url, secret="laptop")
    with pytest.raises(StoreError, match="another secret"):
        quietly(lambda: import_into(target, imported))


def test_a_step_a_writer_turns_into_an_end_without_the_secret_is_never_a_hit(store_url, stores):
    # Whoever can write to the database can give a step the terminal flag and the digest
    # (computed with no secret) of an end with no result; the secret signs every end, so
    # the fleet's workers leave it out and never stop there calling it a hit.
    world = new_world()
    assert pay(worker(stores, store_url, world, "fleet"), "ann").status == "miss"
    store = stores.open(store_url)
    (first,) = read(store, "SELECT id FROM mm_nodes WHERE terminal = 0")[0]
    write(
        store,
        "UPDATE mm_nodes SET terminal = 1, result = NULL, end_digest = ? WHERE id = ?",
        (end_digest(first, None), first),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = pay(worker(stores, store_url, world, "fleet"), "bob")
    assert [w.category for w in caught] == [IntegrityWarning]
    # The forged end is left out and its step kept: the recorded path replays whole.
    assert outcome.hit and outcome.replayed == 2 and outcome.result == "paid 200 to bob"
    assert world["log"][-2:] == [("payee", "bob"), ("amount", "200")]
