"""The bank across sessions and writers: a second process, threads, SQLite without FTS5.

Tiers (see conftest): racing writers run on every store kind; a second process needs a
store that outlives the first (SQLite, PostgreSQL); FTS5 is SQLite's alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

import muscle_mem.bank.sql as bank_sql
from conftest import kinds
from muscle_mem.bank import MemoryBank

SECOND_SESSION = textwrap.dedent(
    """
    import json, sys
    from muscle_mem.bank import MemoryBank

    with MemoryBank(sys.argv[1]) as bank:
        print(json.dumps({
            "brief": bank.brief("brand:voyage"),
            "video": [[r.type, r.scope, r.text] for r in bank.recall(text="video")],
            "open": [a.kind for a in bank.actions(open=True)],
        }))
    """
)


@kinds("sqlite", "postgres")  # a memory store lives in one process
def test_a_second_process_recalls_the_first_ones_session(store_url, tmp_path):
    # Session one: the user story's demo, through the API.
    with MemoryBank(store_url) as bank:
        launched = bank.entity(
            "campaign",
            "sim_20250826_051325",
            name="Voyage Summer Collection 2024",
            brand="voyage",
            objective="conversions",
            expected_outcome="Increase summer collection sales by 25%",
        )
        bank.snapshot(
            launched,
            {"impressions": 15000, "clicks": 450, "ctr": 3.0, "cpc": 4.00, "conversions": 25},
            analysis={"status": "excellent", "trends": ["High CTR indicates strong creative"]},
        )
        bank.action(
            launched,
            "audience",
            "Audience optimization based on performance data",
            expected={"cpc": -0.10},
        )
        bank.learn(
            "brand:voyage",
            "audience_insight",
            "25-35 age group shows 40% higher engagement with lifestyle-focused creatives",
            data={"engagement_rate": 4.2, "age_group": "25-35"},
        )
        bank.learn(
            "brand:voyage",
            "creative_insight",
            "Video ads outperform image ads by 60% for summer collection",
            data={"video_ctr": 3.2, "image_ctr": 2.0},
        )
        bank.decide(
            "campaign_launch",
            {"brand": "Voyage", "budget": {"daily_budget": 2000, "total_budget": 60000}},
            "Launching conversions campaign for Voyage based on strategic analysis",
            scope="brand:voyage",
        )
    script = tmp_path / "second_session.py"
    script.write_text(SECOND_SESSION)
    done = subprocess.run(
        [sys.executable, str(script), store_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    brief = seen["brief"]
    assert "campaign:sim_20250826_051325 (Voyage Summer Collection 2024)" in brief
    assert "impressions 15000, clicks 450, ctr 3, cpc 4, conversions 25" in brief
    assert "audience on campaign:sim_20250826_051325" in brief and "expects cpc -10%" in brief
    assert "Video ads outperform image ads by 60%" in brief
    assert "[campaign_launch] Launching conversions campaign" in brief
    assert seen["video"] == [
        [
            "learning",
            "brand:voyage",
            "Video ads outperform image ads by 60% for summer collection "
            "(video_ctr 3.2 image_ctr 2.0)",
        ]
    ]
    assert seen["open"] == ["audience"]


def test_writers_racing_on_one_entity_get_consecutive_versions(store_kind, stores, store_url):
    # Each its own connection to the file or server; in memory, one store shared.
    shared = stores.open(store_url)
    banks = [
        MemoryBank(shared if store_kind == "memory" else stores.open(store_url)) for _ in range(4)
    ]
    banks[0].entity("campaign", "raced", start=True)
    failures: list[BaseException] = []

    def work(me: int, bank: MemoryBank) -> None:
        try:
            for round in range(5):
                bank.entity("campaign", "raced", **{f"w{me}": round})
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(i, b)) for i, b in enumerate(banks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    history = banks[0].history("campaign:raced")
    assert [v.version for v in history] == list(range(1, 22))
    assert dict(history[-1].attributes) == {"start": True, "w0": 4, "w1": 4, "w2": 4, "w3": 4}


@kinds("sqlite")
def test_sqlite_without_fts5_recalls_the_same_with_a_warning(stores, monkeypatch):
    url = stores.url()
    monkeypatch.setattr(bank_sql, "has_fts5", lambda: False)
    bank_sql._warn_no_fts5.cache_clear()
    with pytest.warns(RuntimeWarning, match="no FTS5, so the memory bank's recall scans"):
        bank = MemoryBank(stores.open(url))
    bank.learn("brand:voyage", "creative_insight", "Video ads outperform image ads")
    bank.learn("brand:voyage", "audience_insight", "Videos of 25-35s do well")
    assert [r.kind for r in bank.recall(text='VIDEO "ads')] == ["creative_insight"]
    assert [r.kind for r in bank.recall(text="25 do")] == ["audience_insight"]
    # A Python with FTS5 indexes what the other one stored.
    monkeypatch.undo()
    later = MemoryBank(stores.open(url))
    assert [r.kind for r in later.recall(text="video ads")] == ["creative_insight"]
    assert [r.kind for r in later.recall(text="videos")] == ["audience_insight"]
