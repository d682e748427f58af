"""The memory bank on every store: entities, snapshots, actions, learnings, recall."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from muscle_mem import Engine, MuscleMemError
from muscle_mem.bank import (
    BankError,
    MemoryBank,
    UnknownEntityError,
    UnknownRecordError,
)
from muscle_mem.errors import ConfigurationError, StoreError
from muscle_mem.store import Store

DAY = 86_400.0
T0 = 1_724_649_205.477823  # 2024-08-26T05:13:25.477823Z


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


def test_a_store_the_bank_cannot_use_is_refused(store_kind):
    class Elsewhere(Store):
        """A store of someone else's making; what it implements does not matter here."""

    Elsewhere.__abstractmethods__ = frozenset()
    with pytest.raises(ConfigurationError, match="MemoryStore, SQLite or PostgreSQL"):
        MemoryBank(Elsewhere())


def test_a_newer_bank_schema_is_refused(bank, store_kind, stores, store_url):
    if store_kind == "memory":
        pytest.skip("a memory store has no schema")
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
def test_a_metric_that_is_not_a_number_is_refused(bank, metrics, message):
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


def test_engine_runs_are_episodes_of_the_entity_they_were_about(stores, store_url):
    engine = Engine(store=stores.open(store_url))
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
