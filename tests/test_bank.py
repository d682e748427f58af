"""The memory bank on every store: entities, snapshots, actions, learnings, recall.

Tiers (see conftest): the bank is tested on every store kind; its schema and index on
SQLite and PostgreSQL (``@persistent``); refusals that happen before any store is read
(a store the bank cannot use, a metric that is not a number) run once, in memory.
"""

from __future__ import annotations

import itertools
import math
import random
import string
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import kinds
from muscle_mem import MemoryStore, MuscleMemError
from muscle_mem.bank import (
    BankError,
    MemoryBank,
    UnknownEntityError,
    UnknownRecordError,
)
from muscle_mem.bank.text import words
from muscle_mem.errors import ConfigurationError, StoreError
from muscle_mem.store import Store

DAY = 86_400.0
T0 = 1_724_649_205.477823  # 2024-08-26T05:13:25.477823Z
persistent = kinds("sqlite", "postgres")  # the stores with a schema and an index


@pytest.fixture
def bank(stores, store_url):
    return MemoryBank(stores.open(store_url))


def campaign(bank, name="sim_1", **attributes):
    return bank.entity("campaign", name, name="Voyage Summer Collection 2024", **attributes)


# -- the bank and its store --------------------------------------------------------------


def test_two_banks_on_one_store_share_what_they_remember(bank):
    other = MemoryBank(bank.store)
    campaign(bank)
    assert other.get("campaign:sim_1").attributes["name"] == "Voyage Summer Collection 2024"
    assert repr(bank).startswith("MemoryBank(")


def test_a_bank_closes_only_a_store_it_opened(stores, store_url):
    given = stores.open(store_url)
    MemoryBank(given).close()
    assert given.runs() == []  # still open

    owned = MemoryBank()  # $MUSCLE_MEM_STORE, which store_url set
    closed = []
    close = owned.store.close
    owned.store.close = lambda: (closed.append(True), close())  # type: ignore[method-assign]
    with owned:
        campaign(owned)
    assert closed == [True]


def test_a_store_the_bank_cannot_use_is_refused():
    class Elsewhere(Store):
        """A store of someone else's making; what it implements does not matter here."""

    Elsewhere.__abstractmethods__ = frozenset()
    with pytest.raises(ConfigurationError, match=r"MemoryStore, SQLite or PostgreSQL.*in_memory"):
        MemoryBank(Elsewhere())


def test_a_store_of_another_making_holds_a_bank_through_the_public_seam(store_kind, stores):
    inner = stores.fresh()  # for SQL: the database the other store keeps its data in
    if store_kind == "memory":

        class Elsewhere(Store):
            in_memory = True  # its data lives in this process, so the bank's may too

    else:

        class Elsewhere(Store):
            """Wraps one of ours through its public names only, as a third party would."""

            url = inner.url
            dialect = inner.dialect  # type: ignore[attr-defined]

            def read(self, work):
                return inner.read(work)  # type: ignore[attr-defined]

            def write(self, work):
                return inner.write(work)  # type: ignore[attr-defined]

    Elsewhere.__abstractmethods__ = frozenset()
    store = Elsewhere()
    campaign(MemoryBank(store))
    # The records are where the store keeps its data: this process, or the database.
    holder = store if store_kind == "memory" else inner
    assert MemoryBank(holder).get("campaign:sim_1").version == 1


def test_a_bank_refuses_a_dialect_it_does_not_speak(store_kind, stores):
    if store_kind == "memory":
        pytest.skip("a memory store speaks no SQL")
    inner = stores.fresh()

    class Elsewhere(Store):
        url = inner.url
        dialect = "oracle"
        read = inner.read  # type: ignore[attr-defined]
        write = inner.write  # type: ignore[attr-defined]

    Elsewhere.__abstractmethods__ = frozenset()
    with pytest.raises(ConfigurationError, match=r"speaks 'oracle'.*sqlite:///"):
        MemoryBank(Elsewhere())


@persistent
def test_a_newer_bank_schema_is_refused(bank, stores, store_url):
    bank.store._write(  # type: ignore[attr-defined]
        lambda cur: cur.execute(
            "UPDATE mm_meta SET value = ? WHERE key = 'bank_schema_version'", ("99",)
        )
    )
    with pytest.raises(StoreError, match=r"schema version 99.*Upgrade muscle-mem"):
        MemoryBank(stores.open(store_url))


# -- entities -----------------------------------------------------------------------------


def test_entities_are_versioned_not_overwritten(bank):
    first = bank.entity("campaign", "sim_1", name="Summer", budget=2000)
    assert (first.kind, first.id, first.ref, first.version) == (
        "campaign",
        "sim_1",
        "campaign:sim_1",
        1,
    )
    same = bank.entity("campaign", "sim_1", budget=2000)
    assert same == first  # nothing changed: no new version
    assert bank.entity("campaign", "sim_1") == first  # no attributes: the entity as it is
    second = bank.entity("campaign", "sim_1", budget=3000, status="live")
    assert second.version == 2
    assert dict(second.attributes) == {"name": "Summer", "budget": 3000, "status": "live"}
    history = bank.history("campaign:sim_1")
    assert [v.version for v in history] == [1, 2]
    assert dict(history[0].attributes) == {"name": "Summer", "budget": 2000}
    assert bank.get(second) == bank.get("campaign:sim_1") == second
    assert bank.entities() == [second]
    assert bank.entities("brand") == []


def test_attributes_named_kind_or_id_are_attributes(bank):
    made = bank.entity("property", "p1", kind="flat", id="internal-7")
    assert dict(made.attributes) == {"kind": "flat", "id": "internal-7"}
    assert made.ref == "property:p1"


def test_an_unknown_entity_says_how_to_create_it(bank):
    with pytest.raises(UnknownEntityError, match=r"bank\.entity\('campaign', 'nope'") as info:
        bank.get("campaign:nope")
    assert isinstance(info.value, LookupError) and isinstance(info.value, MuscleMemError)
    with pytest.raises(UnknownEntityError):
        bank.history("campaign:nope")
    with pytest.raises(UnknownEntityError):
        bank.snapshot("campaign:nope", {"ctr": 1.0})
    with pytest.raises(UnknownEntityError):
        bank.action("campaign:nope", "audience", "why")
    with pytest.raises(UnknownEntityError):
        bank.trend("campaign:nope", "ctr")
    assert bank.export() == MemoryBank(bank.store).export()
    assert bank.entities() == []


BAD_CALLS = [
    (lambda b: b.entity("", "x"), "kind must be a non-empty string"),
    (lambda b: b.entity("a:b", "x"), "contains ':'"),
    (lambda b: b.entity("campaign", ""), "id must be a non-empty string"),
    (lambda b: b.entity("campaign", 7), "id must be a non-empty string"),
    (lambda b: b.entity("campaign", "x", when=object()), "attributes must be JSON data"),
    (lambda b: b.get("sim_1"), "not a 'kind:id' ref"),
    (lambda b: b.get(42), "must be an Entity or a 'kind:id' string"),
    (lambda b: b.learn("voyage", "k", "insight"), "scope 'voyage' is not a 'kind:id' ref"),
    (lambda b: b.learn("brand:voyage", "k", ""), "insight must be a non-empty string"),
    (lambda b: b.decide("k", {"x": math.nan}, "why"), "context must be JSON data"),
    (lambda b: b.recall(limit=0), "limit must be a whole number of at least 1"),
    (lambda b: b.recall(offset=-1), "offset must be a whole number of at least 0"),
    (lambda b: b.recall(type="memo"), "type must be one of"),
    (lambda b: b.recall(text=5), "text must be a string"),
    (lambda b: b.brief("brand:voyage", budget_chars=0), "budget_chars must be"),
    (lambda b: b.actions(open="yes"), "open must be True, False or None"),
]


def test_bad_input_says_what_was_wrong_and_stores_nothing(bank):
    campaign(bank)
    before = bank.export()
    for call, message in BAD_CALLS:
        with pytest.raises(BankError, match=message):
            call(bank)
    assert bank.export() == before


# -- snapshots and trends -------------------------------------------------------------------


def test_snapshots_make_a_trend(bank):
    made = campaign(bank)
    bank.snapshot(made, {"ctr": 3.0, "cpc": 4}, analysis={"status": "excellent"}, at=T0)
    bank.snapshot(made, {"ctr": 3.6}, at=datetime.fromtimestamp(T0 + DAY, timezone.utc))
    bank.snapshot(made, {"ctr": 2.4, "cpc": 5}, at=datetime(2024, 8, 28, 5, 13, 25))  # naive: UTC
    ctr = bank.trend(made, "ctr")
    assert [value for _, value in ctr.points] == [3.0, 3.6, 2.4]
    assert ctr.points[0][0] == T0
    assert ctr.points[2][0] == pytest.approx(T0 + 2 * DAY - 0.477823)
    assert ctr.change == pytest.approx(-0.6)
    assert ctr.percent == pytest.approx(-20.0)
    cpc = bank.trend("campaign:sim_1", "cpc")
    assert (len(cpc.points), cpc.change, cpc.percent) == (2, 1, 25.0)
    lone = bank.trend(made, "clicks")
    assert (lone.points, lone.change, lone.percent) == ((), None, None)
    snapshots = bank.snapshots(made)
    assert snapshots[0].metrics == {"ctr": 3.0, "cpc": 4}
    assert snapshots[0].analysis == {"status": "excellent"} and snapshots[1].analysis is None


def test_one_point_has_no_change_and_a_zero_start_no_percent(bank):
    made = campaign(bank)
    bank.snapshot(made, {"conversions": 0}, at=T0)
    assert bank.trend(made, "conversions").change is None
    bank.snapshot(made, {"conversions": 25}, at=T0 + DAY)
    trend = bank.trend(made, "conversions")
    assert (trend.change, trend.percent) == (25, None)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"impressions": "15000"}, r"must be a number, got '15000' \(pass numbers"),
        ({"ctr": True}, "must be a number, got True"),
        ({"ctr": math.nan}, "must be a finite number"),
        ({"ctr": math.inf}, "must be a finite number"),
        ({}, "non-empty dict"),
        ([("ctr", 1.0)], "non-empty dict"),
        ({"": 1.0}, "a metric name must be a non-empty string"),
    ],
)
def test_a_metric_that_is_not_a_number_is_refused(metrics, message):
    bank = MemoryBank(MemoryStore())  # refused before the store is read: on any store alike
    made = campaign(bank)
    with pytest.raises(BankError, match=message):
        bank.snapshot(made, metrics)
    with pytest.raises(BankError, match="at"):
        bank.snapshot(made, {"ctr": 1.0}, at="yesterday")
    assert bank.snapshots(made) == []


# -- actions and outcomes ---------------------------------------------------------------------


def test_expected_against_actual(bank):
    made = campaign(bank)
    cheaper = bank.action(made, "bidding", "lower bids", expected={"cpl": -0.15}, at=T0)
    clicks = bank.action(made, "creative", "video", expected={"ctr": 0.15}, at=T0 + 1)
    both = bank.action(made, "audience", "widen", expected={"ctr": 0.1, "cpl": -0.1}, at=T0 + 2)
    vague = bank.action(made, "copy", "new copy", expected="more engagement", at=T0 + 3)
    still_open = bank.action(made, "budget", "raise budget", expected={"reach": 0.2}, at=T0 + 4)
    assert isinstance(cheaper, str)
    bank.outcome(cheaper, actual={"cpl": -0.10})  # fell less than hoped: short
    closed = bank.outcome(clicks, actual={"ctr": 0.20})  # beat it
    bank.outcome(both, actual={"ctr": 0.12})  # cpl never reported: short
    bank.outcome(vague, actual="engagement flat")  # text: never judged
    assert not closed.open and closed.actual == {"ctr": 0.20} and closed.shortfall == ()
    short = bank.shortfalls()
    assert [a.id for a in short] == [both, cheaper]  # newest first
    assert short[0].shortfall == ("cpl",) and short[1].shortfall == ("cpl",)
    assert [a.id for a in bank.actions(open=True)] == [still_open]
    assert [a.id for a in bank.actions(made, open=False)] == [vague, both, clicks, cheaper]
    assert len(bank.actions()) == 5
    assert bank.shortfalls("campaign:other") == []


def test_an_outcome_is_final(bank):
    made = campaign(bank)
    action = bank.action(made, "audience", "widen", expected={"ctr": 0.15})
    bank.outcome(action, actual={"ctr": 0.2}, at=T0)
    before = bank.export()
    with pytest.raises(BankError, match="closed already: an outcome is final"):
        bank.outcome(action, actual={"ctr": 0.0})
    assert bank.export() == before
    assert bank.actions()[0].actual == {"ctr": 0.2}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda b, a: b.outcome("act_nope", actual={"ctr": 0.1}), UnknownRecordError, "no action"),
        (lambda b, a: b.outcome(a, actual=None), BankError, "not None"),
        (lambda b, a: b.outcome(a, actual={"ctr": "lots"}), BankError, "must be a number"),
        (lambda b, a: b.outcome(a, actual=[0.1]), BankError, "relative change"),
        (
            lambda b, a: b.action("campaign:sim_1", "x", "y", expected={"ctr": "0.1"}),
            BankError,
            "number",
        ),
        (
            lambda b, a: b.action("campaign:sim_1", "x", "y", expected=0.15),
            BankError,
            "dict of metric",
        ),
        (lambda b, a: b.action("campaign:sim_1", "x", ""), BankError, "reasoning"),
    ],
)
def test_bad_actions_and_outcomes_store_nothing(bank, call, error, message):
    made = campaign(bank)
    action = bank.action(made, "audience", "widen", expected={"ctr": 0.15})
    before = bank.export()
    with pytest.raises(error, match=message):
        call(bank, action)
    assert bank.export() == before
    assert bank.actions(open=True)[0].id == action


# -- learnings and decisions ------------------------------------------------------------------


def test_a_superseded_learning_is_kept_and_marked(bank):
    old = bank.learn("brand:voyage", "audience_insight", "25-35 engage most", at=T0)
    new = bank.learn(
        "brand:voyage", "audience_insight", "25-40 engage most", supersedes=old, at=T0 + 1
    )
    assert new.supersedes == old.id
    assert [r.id for r in bank.recall(scope="brand:voyage")] == [new.id]
    every = bank.recall(scope="brand:voyage", include_superseded=True)
    assert [r.id for r in every] == [new.id, old.id]
    assert every[1].record.superseded_by == new.id  # type: ignore[union-attr]
    assert "25-35" not in bank.brief("brand:voyage")
    before = bank.export()
    with pytest.raises(BankError, match=f"superseded already, by '{new.id}'"):
        bank.learn("brand:voyage", "audience_insight", "again", supersedes=old.id)
    with pytest.raises(UnknownRecordError, match="supersedes names no learning"):
        bank.learn("brand:voyage", "audience_insight", "again", supersedes="lrn_nope")
    assert bank.export() == before


def test_scopes_need_not_be_stored_entities(bank):
    decision = bank.decide(
        "campaign_launch", {"budget": {"daily": 2000}}, "launch", scope="brand:voyage"
    )
    free = bank.decide("pause_all", "holiday freeze", "nothing converts in December")
    assert decision.scope == "brand:voyage" and free.scope is None
    assert [r.id for r in bank.recall(scope="brand:voyage")] == [decision.id]
    assert {r.id for r in bank.recall()} == {decision.id, free.id}
    by_entity = bank.learn(campaign(bank), "creative_insight", "video wins")
    assert by_entity.scope == "campaign:sim_1"


# -- recall ----------------------------------------------------------------------------------------


@pytest.fixture
def remembered(bank):
    made = campaign(bank, brand="voyage")
    bank.snapshot(
        made, {"ctr": 3.0}, analysis={"status": "excellent", "trends": ["Strong creative"]}, at=T0
    )
    action = bank.action(made, "audience", "Widen the audience", expected={"ctr": 0.15}, at=T0 + 1)
    bank.learn(
        "brand:voyage", "creative_insight", "Video ads outperform image ads by 60%", at=T0 + 2
    )
    bank.learn("brand:acme", "creative_insight", "Image ads win for acme", at=T0 + 3)
    bank.decide(
        "campaign_launch", {"brand": "Voyage"}, "Launch for summer", scope="brand:voyage", at=T0 + 4
    )
    return action


def test_recall_finds_words_in_any_case_newest_first(bank, remembered):
    assert [(r.type, r.text) for r in bank.recall(text="VIDEO ads")] == [
        ("learning", "Video ads outperform image ads by 60%")
    ]
    assert [r.type for r in bank.recall(text="ads")] == ["learning", "learning"]
    assert [r.scope for r in bank.recall(text="ads")] == ["brand:acme", "brand:voyage"]
    assert bank.recall(text="video acme") == []  # every word must match
    assert [r.type for r in bank.recall(text="strong creative")] == ["snapshot"]
    assert [r.type for r in bank.recall(text="audience")] == ["action"]  # its kind is a word
    assert [r.type for r in bank.recall()] == [
        "decision",
        "learning",
        "learning",
        "action",
        "snapshot",
    ]


def test_recall_covers_an_actions_outcome(bank, remembered):
    assert bank.recall(text="disappointing") == []
    bank.outcome(remembered, actual="disappointing reach")
    found = bank.recall(text="disappointing")
    assert [r.id for r in found] == [remembered]
    assert found[0].record.actual == "disappointing reach"  # type: ignore[union-attr]


def test_recall_filters_by_scope_kind_type_and_time(bank, remembered):
    voyage = bank.recall(scope="brand:voyage")  # the brand's campaign too
    assert [r.type for r in voyage] == ["decision", "learning", "action", "snapshot"]
    assert [r.type for r in bank.recall(scope="campaign:sim_1")] == ["action", "snapshot"]
    assert [r.scope for r in bank.recall(kind="creative_insight")] == ["brand:acme", "brand:voyage"]
    assert [r.type for r in bank.recall(type="snapshot")] == ["snapshot"]
    assert [r.type for r in bank.recall(since=T0 + 3)] == ["decision", "learning"]
    since = datetime.fromtimestamp(T0 + 4, timezone.utc)
    assert [r.type for r in bank.recall(since=since, text="summer")] == ["decision"]


# Query syntax of FTS5, tsquery and SQL: read as words, so found only if every word is.
HOSTILE = {
    '"': False,
    "'": False,
    "*": False,
    "%": False,
    "?": False,
    "\\": False,
    "": False,
    "   ": False,
    "OR NOT": False,
    "video AND": False,  # "and" is a word no record has
    "vid*": False,  # no prefix matching
    "NEAR(video ads)": False,
    "a?b%c": False,
    "'; DROP TABLE mm_bank_docs; --": False,
    "(video": True,
    "video:ads": True,
    "^video": True,
    "-video": True,
    '"video" "ads"': True,
    "video)": True,
}


def test_recall_reads_any_text_as_words(bank, remembered):
    video = ["Video ads outperform image ads by 60%"]
    for text, matches in HOSTILE.items():
        assert [r.text for r in bank.recall(text=text)] == (video if matches else []), text
    assert len(bank.recall()) == 5  # still all there


def test_recall_treats_query_syntax_as_plain_words(bank, remembered):
    bank.learn("brand:voyage", "note", "Tried NEAR and OR and NOT in copy")
    assert [r.kind for r in bank.recall(text="near OR not")] == ["note"]
    assert [r.kind for r in bank.recall(text='"video" (ads)')] == ["creative_insight"]


def test_recall_pages(bank):
    made = [bank.learn("brand:voyage", "tip", f"tip number {i}", at=T0 + i) for i in range(25)]
    newest_first = [m.id for m in reversed(made)]
    pages = [bank.recall(text="tip", limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [r.id for page in pages for r in page] == newest_first
    assert [r.id for r in bank.recall(scope="brand:voyage", limit=3, offset=22)] == newest_first[
        22:
    ]


def test_records_of_one_time_keep_their_order(bank):
    made = [bank.learn("brand:voyage", "tip", f"tip {i}", at=T0) for i in range(5)]
    assert [r.id for r in bank.recall()] == [m.id for m in reversed(made)]


# -- episodes ------------------------------------------------------------------------------------


def test_engine_runs_are_episodes_of_the_entity_they_were_about(engine):
    bank = MemoryBank(engine.store)
    made = campaign(bank)

    @engine.function
    def launch(name):
        return name

    def agent(task, name):
        launch(name)

    engine.set_agent(agent)
    engine("launch campaign", "a", about=made)
    engine("launch campaign", "a", about="campaign:sim_1")
    engine("something else", "b", about="campaign:other")
    engine("unrelated", "c")
    episodes = bank.episodes(made)
    assert [run.about for run in episodes] == ["campaign:sim_1", "campaign:sim_1"]
    assert [run.status for run in episodes] == ["hit", "miss"]  # newest first
    assert bank.episodes("campaign:nobody") == []


# -- input every store keeps alike -----------------------------------------------------------


def _deep(levels):
    data: list = []
    for _ in range(levels):
        data = [data]
    return data


UNKEEPABLE = [
    # Times a datetime cannot hold: stored, they broke export() and brief().
    (lambda b: b.snapshot("campaign:sim_1", {"ctr": 1}, at=1e20), "at 1e.20 is not a time"),
    (lambda b: b.learn("brand:voyage", "tip", "x", at=-1e15), r"at -1\.?0+\.0 is not"),
    (lambda b: b.decide("k", None, "r", at=datetime(1, 1, 1, tzinfo=_PLUS_5)), "not a time"),
    (lambda b: b.recall(since=1e20), "since 1e.20 is not a time"),
    # Numbers a float cannot hold: they overflowed instead.
    (lambda b: b.snapshot("campaign:sim_1", {"ctr": 10**400}), "metric 'ctr' must be a number a"),
    (lambda b: b.snapshot("campaign:sim_1", {"ctr": 1}, at=10**400), "float can hold"),
    (lambda b: b.action("campaign:sim_1", "k", "r", expected={"ctr": 10**400}), "float can hold"),
    # NUL and lone surrogates: kept by some stores, refused by others.
    (lambda b: b.entity("campaign", "x\x00y"), "id contains a NUL"),
    (lambda b: b.entity("campaign", "sim_1", name="a\x00b"), "in attributes contains a NUL"),
    (lambda b: b.entity("campaign", "sim_1", **{"a\ud800": 1}), "attributes contains a lone"),
    (lambda b: b.entity("kind\ud800", "x"), "kind contains a lone surrogate"),
    (lambda b: b.learn("brand:voyage", "tip", "a\x00b"), "insight contains a NUL"),
    (lambda b: b.learn("brand:voyage", "tip", "a\ud800b"), "insight contains a lone surrogate"),
    (lambda b: b.learn("brand:v\x00", "tip", "x"), "scope contains a NUL"),
    (lambda b: b.learn("brand:voyage", "tip", "x", data={"k": ["\x00"]}), "in data contains a NUL"),
    (lambda b: b.action("campaign:sim_1", "k", "r\x00"), "reasoning contains a NUL"),
    (lambda b: b.action("campaign:sim_1", "k", "r", expected="\ud800"), "expected contains a"),
    (lambda b: b.snapshot("campaign:sim_1", {"a\x00": 1}), "a metric name contains a NUL"),
    (lambda b: b.snapshot("campaign:sim_1", {"c": 1}, analysis="\x00"), "analysis contains a"),
    (lambda b: b.decide("k", {"\x00": 1}, "r"), "in context contains a NUL"),
    (lambda b: b.recall(scope="brand:\x00"), "scope contains a NUL"),
    # Deep data, an offset past what SQL can count: bare errors before.
    (lambda b: b.learn("brand:voyage", "tip", "x", data=_deep(100_000)), "nested too deeply"),
    (lambda b: b.recall(offset=10**20), "offset must be at most"),
]
_PLUS_5 = timezone(timedelta(hours=5))


def test_what_a_store_could_not_keep_is_refused_alike_and_stores_nothing(bank):
    campaign(bank)
    before = bank.export()
    for call, message in UNKEEPABLE:
        with pytest.raises(BankError, match=message):
            call(bank)
    assert bank.export() == before
    assert bank.brief("brand:voyage")
    # The edges of what a datetime holds are kept, and exported.
    bank.learn("brand:voyage", "tip", "oldest", at=datetime(1, 1, 1, tzinfo=timezone.utc))
    bank.learn("brand:voyage", "tip", "latest", at=datetime(9999, 12, 31, tzinfo=timezone.utc))
    assert bank.recall(limit=1, offset=1_000_000_000) == []
    assert bank.export() and bank.brief("brand:voyage")


def test_a_free_text_outcome_is_never_a_shortfall(bank):
    made = campaign(bank)
    action = bank.action(made, "bidding", "raise bids", expected={"cpl": -0.15, "ctr": 0.1})
    closed = bank.outcome(action, "great, CPL fell a lot")
    assert closed.shortfall == ()
    assert bank.shortfalls() == []
    assert "Fell short" not in bank.brief(made)


def test_records_handed_out_are_copies(bank):
    made = bank.entity("campaign", "sim_1", brand="voyage", tags=["a"])
    made.attributes["brand"] = "changed"  # type: ignore[index]
    bank.get(made).attributes["tags"].append("b")
    bank.history(made)[0].attributes["tags"].append("c")
    bank.entities()[0].attributes["new"] = 1  # type: ignore[index]
    snapshot = bank.snapshot(made, {"ctr": 3.0}, analysis={"trends": ["x"]})
    snapshot.metrics["ctr"] = 99.0  # type: ignore[index]
    bank.snapshots(made)[0].analysis["trends"].append("y")
    action = bank.action(made, "bid", "raise", expected={"cpl": -0.1})
    bank.actions()[0].expected["cpl"] = 5.0  # type: ignore[index]
    learning = bank.learn("brand:voyage", "tip", "x", data={"n": 1})
    learning.data["n"] = 2
    bank.recall(type="learning")[0].record.data["n"] = 3  # type: ignore[union-attr]
    assert bank.get(made).attributes == {"brand": "voyage", "tags": ["a"]}
    assert bank.entity("campaign", "sim_1", brand="voyage").version == 1  # nothing changed
    assert bank.snapshots(made)[0].metrics == {"ctr": 3.0}
    assert bank.snapshots(made)[0].analysis == {"trends": ["x"]}
    assert bank.actions()[0].expected == {"cpl": -0.1} and bank.actions()[0].id == action
    assert bank.recall(type="learning")[0].record.data == {"n": 1}  # type: ignore[union-attr]


# -- recall matches what the memory store matches, on every store ------------------------------

# Words each store's own search once read otherwise: PostgreSQL's parser drops "½" and
# splits "x²"; SQLite's unicode61 folds the long s into "s", the final sigma into the
# sigma, and drops New Tai Lue's vowel signs; a word of 2 KB or more is no lexeme.
ODD_TEXTS = [
    "x² squared",
    "½ half",
    "http://x.com/y",
    "\u017f long s",
    "s short",
    "\u00b5 micro",
    "\u03bc mu",
    "\u03c2 final sigma",
    "\u03c3 sigma",
    "\u19b0\u19b1 tai lue",
    "café au lait",
    "emoji 🚀 rocket",
    "a" * 3000,
    "summer " + "z" * 3000,
]


def _expected(texts, query):
    wanted = set(words(query))
    return sorted(t for t in texts if wanted and wanted <= set(words(t)))


def test_recall_finds_exactly_the_records_with_every_word(bank):
    for text in ODD_TEXTS:
        bank.learn("brand:voyage", "tip", text)
    queries = {w for t in ODD_TEXTS for w in words(t)} | {"x", "s", "\u03c3", "video ½", "summer"}
    for query in sorted(queries):
        found = sorted(r.text for r in bank.recall(text=query, limit=100))
        assert found == _expected(ODD_TEXTS, query), query


_scopes = itertools.count()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4),
    extra=st.text(max_size=6),
)
def test_recall_of_any_words_matches_them_exactly(bank, texts, extra):
    scope = f"brand:b{next(_scopes)}"
    kept = []
    for text in texts:
        if text.strip() and "\x00" not in text and _encodable(text):
            bank.learn(scope, "tip", text)
            kept.append(text)
    for query in {*(w for t in kept for w in words(t)), *kept[:1], extra}:
        found = sorted(r.text for r in bank.recall(scope, text=query, limit=100))
        assert found == _expected(kept, query), query


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_document_too_big_for_a_tsvector_is_stored_and_found(bank):
    made = campaign(bank)
    rng = random.Random(0)
    huge = " ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(150_000))
    bank.snapshot(made, {"ctr": 1}, analysis=f"{huge} needle")
    bank.snapshot(made, {"ctr": 2}, analysis="needle alone")
    assert len(bank.recall(text="needle")) == 2
    assert [r.text for r in bank.recall(text=f"needle {huge[:8]}")] == [f"{huge} needle"]
    assert bank.recall(text="needle absentword") == []


@persistent
def test_a_store_indexed_by_an_older_muscle_mem_is_reindexed(bank, store_kind, stores, store_url):
    bank.learn("brand:voyage", "tip", "x² and \u017f")

    def as_version_1(cur):
        # The index as schema version 1 made it: PostgreSQL's parser, FTS5's unicode61.
        if store_kind == "postgres":
            cur.execute("UPDATE mm_bank_docs SET tsv = to_tsvector('simple', words)")
        else:
            cur.execute("DROP TABLE mm_bank_fts")
            cur.execute(
                "CREATE VIRTUAL TABLE mm_bank_fts USING fts5(words, "
                "tokenize = 'unicode61 remove_diacritics 0')"
            )
            cur.execute(
                "INSERT INTO mm_bank_fts (rowid, words) SELECT seq, words FROM mm_bank_docs"
            )
        cur.execute("UPDATE mm_meta SET value = '1' WHERE key = 'bank_schema_version'")

    bank.store._write(as_version_1)  # type: ignore[attr-defined]
    later = MemoryBank(stores.open(store_url))
    assert [r.text for r in later.recall(text="x²")] == ["x² and \u017f"]
    assert [r.text for r in later.recall(text="\u017f")] == ["x² and \u017f"]
    assert later.recall(text="s") == later.recall(text="x") == []


# -- episodes, in the order they started -------------------------------------------------------


def test_episodes_are_ordered_by_when_they_started(engine):
    bank = MemoryBank(engine.store)
    made = campaign(bank)
    started, go_on = threading.Event(), threading.Event()

    @engine.function
    def launch(name):
        return name

    def agent(task, name):
        if name == "slow":
            started.set()
            go_on.wait(10)
        launch(name)

    engine.set_agent(agent)
    slow = threading.Thread(target=lambda: engine("launch", "slow", about=made))
    slow.start()
    started.wait(10)
    engine("launch", "fast", about=made)  # started second, committed first
    go_on.set()
    slow.join()
    episodes = bank.episodes(made)
    assert len(episodes) == 2
    assert episodes[0].started_at > episodes[1].started_at
