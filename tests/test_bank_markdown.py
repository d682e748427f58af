"""The memory bank exported as folders of markdown (``bank export --markdown``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from muscle_mem import Engine
from muscle_mem.bank import MemoryBank
from muscle_mem.bank.markdown import MARK
from muscle_mem.cli import main

DAY1 = datetime(2026, 5, 1, 9, 30, tzinfo=timezone.utc)
DAY2 = datetime(2026, 5, 2, 14, 5, tzinfo=timezone.utc)


def fill(bank):
    bank.entity("campaign", "summer", name="Summer | 2026", brand="voyage")
    bank.snapshot("campaign:summer", {"impressions": 15000, "ctr": 3.0}, "strong creative", DAY1)
    bank.snapshot("campaign:summer", {"impressions": 21000, "ctr": 2.5}, at=DAY2)
    won = bank.action("campaign:summer", "audience", "widen to 25-45", {"ctr": 0.1}, at=DAY1)
    bank.outcome(won, {"ctr": 0.12}, at=DAY2)
    short = bank.action("campaign:summer", "bid", "lower the bid", {"cpc": -0.2}, at=DAY1)
    bank.outcome(short, {"cpc": -0.05}, at=DAY2)
    bank.action("campaign:summer", "creative", "try video", "more clicks", at=DAY2)
    old = bank.learn("brand:voyage", "creative_insight", "image ads do well", at=DAY1)
    bank.learn(
        "brand:voyage",
        "creative_insight",
        "video beats image by 60%",
        {"video_ctr": 3.2},
        supersedes=old,
        at=DAY2,
    )
    bank.decide("budget", {"daily": 2000}, "scale what converts", "brand:voyage", at=DAY2)


def test_the_bank_reads_as_the_folders_a_team_keeps(stores, tmp_path):
    bank = MemoryBank(stores.fresh())
    fill(bank)
    engine = Engine(store=bank.store)
    engine.set_agent(lambda task: None)
    engine("look around")
    folder = tmp_path / "memory-bank"
    changed, removed = bank.export_markdown(folder)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.md"))
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert names == sorted(
        [
            "README.md",
            "conversion-data/campaign-summer.md",
            "daily-logs/2026-05-01.md",
            "daily-logs/2026-05-02.md",
            f"daily-logs/{today}.md",
            "decisions/brand-voyage.md",
            "learnings/brand-voyage.md",
            "optimization-wins/campaign-summer.md",
        ]
    )
    assert (changed, removed) == (len(names), 0)
    read = {name: (folder / name).read_text() for name in names}
    assert all(text.startswith(MARK + "\n") for text in read.values())
    assert "| campaign:summer | 1 |" in read["README.md"]
    assert "Summer \\| 2026" in read["README.md"]  # a pipe does not break the table
    assert read["conversion-data/campaign-summer.md"].count("\n| 2026-05-0") == 2
    assert "| 2026-05-01 09:30 UTC | 3 | 15,000 |" in read["conversion-data/campaign-summer.md"]
    wins = read["optimization-wins/campaign-summer.md"]
    assert wins.index("## Wins") < wins.index("widen to 25-45") < wins.index("## Fell short")
    assert "**Expected:** cpc -20%" in wins and "**Short on:** cpc" in wins
    assert wins.index("## Still open") < wins.index("try video")
    day1 = read["daily-logs/2026-05-01.md"]
    assert (
        "- 09:30 **snapshot** campaign:summer: impressions 15,000, ctr 3: strong creative" in day1
    )
    day2 = read["daily-logs/2026-05-02.md"]
    assert "**outcome** campaign:summer · bid: cpc -5% (expected: cpc -20%); short on cpc" in day2
    assert "**Engine runs:** 1 (1 miss)" in read[f"daily-logs/{today}.md"]
    learnings = read["learnings/brand-voyage.md"]
    assert "~~2026-05-01 09:30 UTC: image ads do well~~ (superseded by lrn_" in learnings
    assert 'data: {"video_ctr": 3.2}' in learnings
    assert '"daily": 2000' in read["decisions/brand-voyage.md"]

    # Again: nothing changes. A note of the user's beside the files is never touched.
    (folder / "daily-logs" / "my-notes.md").write_text("# mine\n")
    assert bank.export_markdown(folder) == (0, 0)
    assert (folder / "daily-logs" / "my-notes.md").read_text() == "# mine\n"


def test_the_command_writes_the_folders(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/bank.db"
    fill(MemoryBank(url))
    folder = tmp_path / "memory-bank"
    assert main(["bank", "export", "--markdown", str(folder), "--store", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"dir": str(folder), "files_changed": 7, "files_removed": 0}
    assert (folder / "daily-logs" / "2026-05-01.md").exists()
    code = main(["bank", "export", "--markdown", str(folder), "-o", "x.json", "--store", url])
    assert code == 2
