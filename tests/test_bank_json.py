"""The bank as JSON in the seed's shapes: export, import, round trips, bad documents.

Runs on every store kind (see conftest): imports are written and exports read there.
"""

from __future__ import annotations

import copy
import json

import pytest

from muscle_mem.bank import BankImportError, MemoryBank

T0 = 1_724_649_205.477823

# The literal examples of the user story (seed 002), numbers as strings and all.
SEED_CAMPAIGN_MEMORY = json.loads(
    """
{
  "campaigns": {
    "sim_20250826_051325": {
      "launch_date": "2025-08-26T05:13:25.477823",
      "campaign_data": {
        "name": "Voyage Summer Collection 2024",
        "objective": "conversions",
        "expected_outcome": "Increase summer collection sales by 25%"
      },
      "performance_snapshots": [
        {
          "performance": {
            "impressions": "15000",
            "clicks": "450",
            "ctr": "3.0",
            "cpc": "4.00"
          },
          "analysis": {
            "status": "excellent",
            "trends": ["High CTR indicates strong creative performance"]
          }
        }
      ],
      "optimizations": [
        {
          "type": "audience",
          "reasoning": "Audience optimization based on performance data",
          "expected_impact": "15% CTR improvement"
        }
      ]
    }
  }
}
"""
)

SEED_STRATEGIC_MEMORY = json.loads(
    """
{
  "brand_strategies": {
    "voyage": {
      "learnings": [
        {
          "type": "audience_insight",
          "insight": "25-35 age group shows 40% higher engagement with lifestyle-focused creatives",
          "supporting_data": {
            "engagement_rate": 4.2,
            "age_group": "25-35"
          }
        },
        {
          "type": "creative_insight",
          "insight": "Video ads outperform image ads by 60% for summer collection",
          "supporting_data": {
            "video_ctr": 3.2,
            "image_ctr": 2.0
          }
        }
      ]
    }
  },
  "strategic_decisions": [
    {
      "type": "campaign_launch",
      "context": {
        "brand": "Voyage",
        "objective": "conversions",
        "budget": {"daily_budget": 2000, "total_budget": 60000}
      },
      "reasoning": "Launching conversions campaign for Voyage based on strategic analysis"
    }
  ]
}
"""
)

SEED_COUNTS = {
    "entities": 1,
    "snapshots": 1,
    "actions": 1,
    "outcomes": 0,
    "learnings": 2,
    "decisions": 1,
}


@pytest.fixture
def bank(stores, store_url):
    return MemoryBank(stores.open(store_url))


def fill(bank):
    """A bank with one of everything: versions, outcomes, a superseded learning."""
    made = bank.entity("campaign", "sim_1", name="Voyage Summer", brand="voyage")
    bank.entity("campaign", "sim_1", status="live")
    bank.entity("property", "flat:12", city="Pune")
    bank.snapshot(made, {"impressions": 15000, "ctr": 3.0}, analysis={"status": "excellent"}, at=T0)
    bank.snapshot(made, {"impressions": 21000, "ctr": 2.5}, at=T0 + 86_400)
    closed = bank.action(made, "audience", "widen", expected={"ctr": 0.15}, at=T0 + 1)
    bank.outcome(closed, actual={"ctr": 0.05}, at=T0 + 2)
    bank.action("property:flat:12", "pricing", "drop rent", expected="more viewings", at=T0 + 3)
    old = bank.learn("brand:voyage", "audience_insight", "25-35 engage", data={"age": "25-35"})
    bank.learn("brand:voyage", "audience_insight", "25-40 engage", supersedes=old)
    bank.learn("campaign:sim_1", "creative_insight", "video wins", data=[1, 2])
    bank.decide("campaign_launch", {"brand": "Voyage"}, "launch it", scope="brand:voyage")
    bank.decide("freeze", "holidays", "nothing converts", scope=None)


def test_export_import_export_is_identical(bank, stores):
    fill(bank)
    exported = bank.export()
    assert json.loads(json.dumps(exported)) == exported  # plain JSON
    assert set(exported) == {"campaign_memory", "strategic_memory"}
    copy_bank = MemoryBank(stores.fresh())
    counts = copy_bank.import_json(json.dumps(exported))
    assert counts == {
        "entities": 3,
        "snapshots": 2,
        "actions": 2,
        "outcomes": 1,
        "learnings": 3,
        "decisions": 2,
    }
    assert copy_bank.export() == exported
    assert copy_bank.shortfalls()[0].shortfall == ("ctr",)
    assert [v.version for v in copy_bank.history("campaign:sim_1")] == [1, 2]
    assert copy_bank.recall(text="25-35") == []  # superseded stays superseded
    assert copy_bank.brief("brand:voyage") == bank.brief("brand:voyage")


def test_export_has_the_seeds_shape(bank):
    fill(bank)
    exported = bank.export()
    sim = exported["campaign_memory"]["campaigns"]["sim_1"]
    assert sim["campaign_data"] == {"name": "Voyage Summer", "brand": "voyage", "status": "live"}
    assert sim["launch_date"] == sim["versions"][0]["updated_at"]
    assert sim["performance_snapshots"][0]["performance"] == {"impressions": 15000, "ctr": 3.0}
    assert sim["performance_snapshots"][0]["timestamp"] == "2024-08-26T05:13:25.477823+00:00"
    assert sim["optimizations"][0]["expected_impact"] == {"ctr": 0.15}
    assert sim["optimizations"][0]["outcome"]["actual_impact"] == {"ctr": 0.05}
    assert "property:flat:12" in exported["campaign_memory"]["entities"]
    strategic = exported["strategic_memory"]
    learnings = strategic["brand_strategies"]["voyage"]["learnings"]
    assert [x["insight"] for x in learnings] == ["25-35 engage", "25-40 engage"]
    assert learnings[0]["superseded_by"] == learnings[1]["id"] == learnings[1]["id"]
    assert learnings[1]["supersedes"] == learnings[0]["id"]
    assert list(strategic["learnings"]) == ["campaign:sim_1"]
    assert [d["scope"] for d in strategic["strategic_decisions"]] == ["brand:voyage", None]


def test_importing_twice_stores_nothing_new(bank):
    fill(bank)
    exported = bank.export()
    assert set(bank.import_json(exported).values()) == {0}
    assert bank.export() == exported


def test_the_seeds_literal_example_imports(bank):
    assert bank.import_json(SEED_CAMPAIGN_MEMORY) == SEED_COUNTS | {
        "learnings": 0,
        "decisions": 0,
    }
    assert bank.import_json(SEED_STRATEGIC_MEMORY) == dict.fromkeys(SEED_COUNTS, 0) | {
        "learnings": 2,
        "decisions": 1,
    }
    both = {"campaign_memory": SEED_CAMPAIGN_MEMORY, "strategic_memory": SEED_STRATEGIC_MEMORY}
    assert set(bank.import_json(both).values()) == {0}  # the same records, whichever file
    ref = "campaign:sim_20250826_051325"
    made = bank.get(ref)
    assert made.attributes["name"] == "Voyage Summer Collection 2024"
    assert made.updated_at == pytest.approx(1756185205.477823)  # naive times are UTC
    snapshot = bank.snapshots(ref)[0]
    assert snapshot.metrics == {"impressions": 15000, "clicks": 450, "ctr": 3.0, "cpc": 4.0}
    assert snapshot.at == made.updated_at  # no timestamp: the launch date
    assert bank.actions(ref)[0].expected == "15% CTR improvement"
    assert bank.shortfalls() == []  # free text is never judged
    decision = bank.recall(type="decision")[0]
    assert decision.scope == "brand:voyage"  # from the context's brand
    assert {r.kind for r in bank.recall(scope="brand:voyage", type="learning")} == {
        "audience_insight",
        "creative_insight",
    }
    again = copy.deepcopy(both)
    assert set(bank.import_json(again).values()) == {0}


def test_a_changed_seed_campaign_makes_a_new_version(bank):
    bank.import_json(SEED_CAMPAIGN_MEMORY)
    changed = copy.deepcopy(SEED_CAMPAIGN_MEMORY)
    changed["campaigns"]["sim_20250826_051325"]["campaign_data"]["objective"] = "reach"
    assert bank.import_json(changed)["entities"] == 1
    assert bank.get("campaign:sim_20250826_051325").version == 2


def _seed(**changes):
    document = copy.deepcopy(SEED_CAMPAIGN_MEMORY)
    sim = document["campaigns"]["sim_20250826_051325"]
    for key, value in changes.items():
        sim[key] = value
    return document


MALFORMED = [
    ([], "expected a JSON object, got list"),
    ({"other": 1}, "nothing to import"),
    ("{not json", "not JSON"),
    (
        _seed(performance_snapshots=[{"performance": {"ctr": "high"}}]),
        r"^campaigns\.sim_20250826_051325\.performance_snapshots\[0\]\.performance\.ctr: "
        r'expected a number, got "high"$',
    ),
    (
        _seed(performance_snapshots=[{"analysis": "x"}]),
        r"performance_snapshots\[0\]\.performance: missing",
    ),
    (_seed(optimizations=[{"type": "audience"}]), r"optimizations\[0\]\.reasoning: missing"),
    (
        _seed(optimizations=[{"type": "a:b", "reasoning": "r"}]),
        r"optimizations\[0\]\.type: .*':'",
    ),
    (_seed(optimizations="none"), r"\.optimizations: expected a list"),
    (_seed(launch_date="last tuesday"), r"\.launch_date: expected an ISO 8601 time"),
    (_seed(campaign_data=["x"]), r"\.campaign_data: expected an object"),
    (
        _seed(versions=[{"version": 2, "updated_at": 0, "attributes": {}}]),
        r"versions\[0\]\.version: expected 1",
    ),
    (
        {
            "campaign_memory": SEED_CAMPAIGN_MEMORY,
            "strategic_memory": {"strategic_decisions": [{"type": "x"}]},
        },
        r"^strategic_memory\.strategic_decisions\[0\]\.reasoning: missing",
    ),
    (
        {"brand_strategies": {"voyage": {"learnings": [{"type": "t", "insight": 3}]}}},
        r"brand_strategies\.voyage\.learnings\[0\]\.insight: expected a non-empty string",
    ),
    ({"entities": {"flat": {}}}, r"^entities\.flat: .*not a 'kind:id' ref"),
    (
        {"learnings": {"brand:voyage": [{"type": "t", "insight": "i", "supersedes": "lrn_x"}]}},
        r"learnings\.brand:voyage\[0\]\.supersedes: names no learning 'lrn_x'",
    ),
    # Times no datetime holds, numbers no float holds: stored, they broke export and brief.
    (
        _seed(performance_snapshots=[{"performance": {"ctr": 1}, "timestamp": 1e20}]),
        r"performance_snapshots\[0\]\.timestamp: .*not a time a datetime can hold",
    ),
    (_seed(launch_date="0001-01-01T00:00:00+05:00"), r"\.launch_date: .*not a time"),
    (
        _seed(performance_snapshots=[{"performance": {"ctr": "1e999"}}]),
        r"performance_snapshots\[0\]\.performance\.ctr: .*must be a finite number",
    ),
    (
        _seed(performance_snapshots=[{"performance": {"ctr": "9" * 5000}}]),
        r"performance_snapshots\[0\]\.performance\.ctr: .*must be a finite number",
    ),
    (
        '{"campaigns": {"c": {"performance_snapshots": [{"performance": {"x": 1%s}}]}}}'
        % ("0" * 400),
        r"^campaigns\.c\.performance_snapshots\[0\]\.performance\.x: .*float can hold",
    ),
    (
        _seed(optimizations=[{"type": "t", "reasoning": "r", "expected_impact": {"x": 10**400}}]),
        r"optimizations\[0\]\.expected_impact\.x: .*float can hold",
    ),
    # NUL: PostgreSQL refused it mid-write, the others kept it.
    (
        {"learnings": {"brand:voyage": [{"type": "t", "insight": "a\u0000b"}]}},
        r"^learnings\.brand:voyage\[0\]\.insight: .*NUL",
    ),
    # A key neither shape knows, or one shape's keys beside the other's: refused, not skipped.
    (
        {"campaign_memory": SEED_CAMPAIGN_MEMORY, **SEED_STRATEGIC_MEMORY},
        r"^brand_strategies: not a key this document can have: expected campaign_memory, "
        r"strategic_memory$",
    ),
    (
        {"strategic_memory": {"strategic_decision": SEED_STRATEGIC_MEMORY["strategic_decisions"]}},
        r"^strategic_memory\.strategic_decision: not a key .*: expected brand_strategies, "
        r"learnings, strategic_decisions$",
    ),
    (
        {"campaign_memory": {"campaigns": {}, "brand_strategies": {}}},
        r"^campaign_memory\.brand_strategies: not a key .*: expected campaigns, entities$",
    ),
    ({**SEED_CAMPAIGN_MEMORY, "strategic_decision": []}, r"^strategic_decision: not a key"),
]


def test_a_malformed_document_names_where_and_stores_nothing(bank):
    bank.entity("campaign", "kept", name="before")
    before = bank.export()
    for document, message in MALFORMED:
        with pytest.raises(BankImportError, match=message):
            bank.import_json(document)
    assert bank.export() == before


def test_a_conflicting_history_is_refused_whole(bank, stores):
    fill(bank)
    exported = bank.export()
    other = MemoryBank(stores.fresh())
    other.entity("campaign", "sim_1", name="Someone else's")
    other.learn("brand:acme", "tip", "kept")
    before = other.export()
    with pytest.raises(BankImportError, match=r"campaigns\.sim_1\.versions\[0\]: conflicts"):
        other.import_json(exported)
    assert other.export() == before


def test_a_time_of_minus_one_survives_a_round_trip(bank, stores):
    """-1 was the importer's mark for "no time given", so it became the import's time."""
    made = bank.entity("campaign", "sim_1", name="Voyage Summer")
    bank.snapshot(made, {"ctr": 3.0}, at=-1)
    action = bank.action(made, "audience", "widen", expected={"ctr": 0.15}, at=-1)
    bank.outcome(action, actual={"ctr": 0.2}, at=-1.0)
    bank.learn("brand:voyage", "tip", "at minus one", at=-1)
    bank.decide("launch", None, "epoch minus one", at=-1.0)
    exported = bank.export()
    other = MemoryBank(stores.fresh())
    other.import_json(exported)
    assert other.export() == exported
    assert exported["strategic_memory"]["strategic_decisions"][0]["timestamp"] == (
        "1969-12-31T23:59:59+00:00"
    )
