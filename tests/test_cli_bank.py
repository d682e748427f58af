"""``muscle-mem bank ...``, end to end: brief, recall, export and import.

The data goes in through :class:`~muscle_mem.bank.MemoryBank` (a seed-002 style brand
and campaign) and every figure the command prints is checked against what the Python
API returns for the same arguments, on SQLite and on PostgreSQL. Most tests call
:func:`muscle_mem.cli.main` in-process; a few run the installed script.

Tiers (see conftest): the bank's figures are checked on SQLite and PostgreSQL
(``@both_kinds``); how a command fails, on SQLite alone (``@sqlite_only``); tests that
name no store run once. A command refuses a memory store, so none runs there.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import muscle_mem
from conftest import Stores, kinds
from muscle_mem import Engine
from muscle_mem.bank import MemoryBank
from muscle_mem.cli import main
from test_cli import cli, cli_json, piped

SCRIPT = str(Path(sys.executable).parent / "muscle-mem")
T0 = 1_724_649_205.477823  # 2024-08-26: long before any --since window
DAY = 86_400.0
NOTHING = "# Memory: {0}\n\nNothing remembered about {0} yet."
OTHER_KIND = {"sqlite": "postgres", "postgres": "sqlite"}

both_kinds = kinds("sqlite", "postgres")
sqlite_only = kinds("sqlite")


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_secret_from_the_shell(monkeypatch):
    monkeypatch.delenv("MUSCLE_MEM_SECRET", raising=False)


@pytest.fixture
def url(store_kind, store_url):
    """A fresh store of the parametrised kind (sqlite or postgres); $MUSCLE_MEM_STORE too."""
    assert store_kind in ("sqlite", "postgres")
    return store_url


@pytest.fixture
def bank(url, stores):
    return MemoryBank(stores.open(url))


@pytest.fixture
def filled(bank):
    return fill(bank)


@pytest.fixture
def others(store_kind, tmp_path, request):
    """Fresh stores of the other kind: PostgreSQL for a SQLite test, and back."""
    made = Stores(OTHER_KIND[store_kind], tmp_path / "other", request)
    (tmp_path / "other").mkdir()
    yield made
    made.close()


def fill(bank):
    """Seed 002, told through the API: a Voyage campaign, its metrics, an optimization
    that fell short, what was learned about the brand, and the launch decision. Plus a
    superseded learning, and two records of today (the rest are of August 2024)."""
    bank.entity("brand", "voyage", name="Voyage", market="eyewear")
    campaign = bank.entity(
        "campaign", "sim_20250826_051325", name="Voyage Summer Collection 2024", brand="voyage"
    )
    bank.entity("campaign", "sim_20250826_051325", objective="conversions")
    bank.snapshot(
        campaign,
        {"impressions": 15000, "clicks": 450, "ctr": 3.0, "cpc": 4.0},
        analysis={"status": "excellent", "trends": ["High CTR: strong creative"]},
        at=T0,
    )
    bank.snapshot(campaign, {"impressions": 21000, "clicks": 500, "ctr": 2.4}, at=T0 + DAY)
    action = bank.action(
        campaign,
        "audience",
        "Audience optimization based on performance data",
        expected={"ctr": 0.15},
        at=T0 + DAY + 1,
    )
    bank.outcome(action, {"ctr": 0.05}, at=T0 + 2 * DAY)
    old = bank.learn("brand:voyage", "audience_insight", "25-30 engage most", at=T0 + 10)
    bank.learn(
        "brand:voyage",
        "audience_insight",
        "25-35 age group shows 40% higher engagement with lifestyle-focused creatives",
        data={"engagement_rate": 4.2, "age_group": "25-35"},
        supersedes=old,
        at=T0 + 11,
    )
    bank.learn(
        "brand:voyage",
        "creative_insight",
        "Video ads outperform image ads by 60% for the summer collection",
        data={"video_ctr": 3.2, "image_ctr": 2.0},
        at=T0 + 12,
    )
    bank.decide(
        "campaign_launch",
        {"brand": "Voyage", "budget": {"daily_budget": 2000, "total_budget": 60000}},
        "Launching conversions campaign for Voyage based on strategic analysis",
        scope="brand:voyage",
        at=T0 + 13,
    )
    # Today's: a learning about another brand and an unscoped decision, non-ASCII too.
    bank.learn("brand:acme", "creative_insight", "Café shoppers like video stills")
    bank.decide("budget_freeze", "holidays", "Nothing converts over the holidays")
    return bank


def one_line_error(err, code, expected_code):
    assert code == expected_code, err
    assert err.startswith("muscle-mem: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def script_env(store=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSCLE_MEM_")}
    if store is not None:
        env["MUSCLE_MEM_STORE"] = store
    return env


def script(*args, store=None, stdin=None):
    """Run the installed ``muscle-mem`` script, its output piped (not a terminal)."""
    return subprocess.run(
        [SCRIPT, *map(str, args)],
        env=script_env(store),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def exported(bank):
    """The bank's export as the command prints it, read back."""
    return json.loads(json.dumps(bank.export(), indent=2, ensure_ascii=False))


def export_of(capsys, url):
    code, out, err = cli(capsys, "bank", "export", "--store", url)
    assert (code, err) == (0, ""), err
    return json.loads(out)


# -- brief -------------------------------------------------------------------------------


@both_kinds
def test_brief_is_the_apis_brief(filled, url, capsys):
    for scope in ("brand:voyage", "campaign:sim_20250826_051325", "brand:acme"):
        code, out, err = cli(capsys, "bank", "brief", scope, "--store", url)
        assert (code, err) == (0, ""), err
        assert out == filled.brief(scope) + "\n"
        assert out == filled.brief(scope, budget_chars=2000) + "\n"  # the default budget
    brief = filled.brief("brand:voyage")
    assert brief.startswith("# Memory: brand:voyage")
    assert "25-35 age group" in brief and "25-30 engage most" not in brief  # superseded
    assert "Video ads outperform" in brief and "Launching conversions campaign" in brief
    assert "expected ctr +15%, got ctr +5%; short on ctr" in brief
    assert "acme" not in brief.lower()


@both_kinds
def test_brief_honours_the_budget(filled, url, capsys):
    full = filled.brief("brand:voyage", budget_chars=100_000)
    for budget in (1, 20, 120, 400, len(full) - 40, len(full), 100_000):
        code, out, err = cli(capsys, "bank", "brief", "brand:voyage", "--budget", budget)
        assert (code, err) == (0, ""), (budget, err)
        assert out == filled.brief("brand:voyage", budget_chars=budget) + "\n", budget
        assert 0 < len(out) - 1 <= budget
    assert cli(capsys, "bank", "brief", "brand:voyage", "--budget", 100_000)[1] == full + "\n"
    tight = cli(capsys, "bank", "brief", "brand:voyage", "--budget", len(full) - 40)[1]
    assert tight != full + "\n"


@both_kinds
def test_brief_json_an_unknown_scope_and_a_malformed_one(filled, url, capsys):
    data = cli_json(capsys, "bank", "brief", "brand:voyage", "--budget", 500, "--store", url)
    assert data == {"scope": "brand:voyage", "brief": filled.brief("brand:voyage", 500)}
    # --json and --store before the command are the same
    assert cli_json(capsys, "--store", url, "bank", "brief", "brand:voyage", "--budget", 500) == (
        data
    )

    # a scope with nothing stored about it
    code, out, err = cli(capsys, "bank", "brief", "brand:nobody", "--store", url)
    assert (code, out, err) == (0, NOTHING.format("brand:nobody") + "\n", "")
    assert out == filled.brief("brand:nobody") + "\n"

    # a malformed scope: one line, exit 1
    for scope in ("voyage", "brand:", ":voyage"):
        code, out, err = cli(capsys, "bank", "brief", scope, "--store", url)
        one_line_error(err, code, 1)
        assert out == ""
        assert f"scope {scope!r} is not a 'kind:id' ref" in err, err


@sqlite_only
def test_brief_budget_below_1_exits_2(url, filled, capsys):
    for budget in (0, -5):
        code, out, err = cli(capsys, "bank", "brief", "brand:voyage", "--budget", budget)
        one_line_error(err, code, 2)
        assert out == "" and "--budget must be at least 1" in err
    with pytest.raises(SystemExit) as exited:  # not a number at all: argparse's usage
        main(["bank", "brief", "brand:voyage", "--budget", "lots"])
    assert exited.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


# -- recall ------------------------------------------------------------------------------


def recall_ids(capsys, url, *args):
    return [r["id"] for r in cli_json(capsys, "bank", "recall", *args, "--store", url)]


def api_ids(bank, **query):
    return [r.id for r in bank.recall(**query)]


@both_kinds
def test_recall_agrees_with_the_api(filled, url, capsys):
    day_ago = time.time() - DAY
    cases = [
        ([], {}),
        (["video"], {"text": "video"}),
        (["VIDEO ads"], {"text": "VIDEO ads"}),
        (["--scope", "brand:voyage"], {"scope": "brand:voyage"}),
        (["--scope", "campaign:sim_20250826_051325"], {"scope": "campaign:sim_20250826_051325"}),
        (["--scope", "brand:acme"], {"scope": "brand:acme"}),
        (["--kind", "audience_insight"], {"kind": "audience_insight"}),
        (["--kind", "audience_insight", "--all"], {"kind": "audience_insight"}),
        (["--since", "1d"], {"since": day_ago}),
        (["video", "--scope", "brand:voyage"], {"text": "video", "scope": "brand:voyage"}),
        (["ctr", "--type", "action"], {"text": "ctr", "type": "action"}),
        (["-n", "3"], {"limit": 3}),
        (["--limit", "2", "--offset", "1"], {"limit": 2, "offset": 1}),
        (["--offset", "100"], {"offset": 100}),
    ]
    cases += [(["--type", t], {"type": t}) for t in ("learning", "decision", "action", "snapshot")]
    for args, query in cases:
        if "--all" in args:
            query = {**query, "include_superseded": True}
        want = api_ids(filled, **query)
        assert recall_ids(capsys, url, *args) == want, args
    # the figures are not vacuous: each filter kept something and left something out
    everything = api_ids(filled, limit=1000, include_superseded=True)
    assert len(everything) == 8  # 1 analysis, 1 action, 4 learnings, 2 decisions
    assert len(api_ids(filled, since=day_ago)) == 2
    assert len(api_ids(filled, scope="brand:voyage")) == 5  # its campaign's too
    assert api_ids(filled, type="snapshot") and api_ids(filled, text="video")


@both_kinds
def test_recall_json_carries_the_records(filled, url, capsys):
    found = cli_json(capsys, "bank", "recall", "video", "--scope", "brand:voyage", "--store", url)
    api = filled.recall(text="video", scope="brand:voyage")
    assert [(r["type"], r["id"], r["scope"], r["kind"], r["text"]) for r in found] == [
        (r.type, r.id, r.scope, r.kind, r.text) for r in api
    ]
    (learning,) = [r for r in found if r["type"] == "learning"]
    assert learning["at"] == "2024-08-26T05:13:37.477823+00:00"
    assert learning["record"]["at"] == learning["at"]  # one time format, the record's too
    assert learning["record"]["data"] == {"video_ctr": 3.2, "image_ctr": 2.0}
    (action,) = cli_json(capsys, "bank", "recall", "--type", "action", "--store", url)
    assert action["record"]["closed_at"] == "2024-08-28T05:13:25.477823+00:00"
    assert learning["record"]["insight"].startswith("Video ads outperform")


@both_kinds
def test_recall_pages_and_superseded_learnings_only_with_all(filled, url, capsys):
    whole = recall_ids(capsys, url, "--all")
    assert whole == api_ids(filled, include_superseded=True) and len(whole) == 8
    pages = [recall_ids(capsys, url, "--all", "-n", 3, "--offset", o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 2, 0]
    assert [i for page in pages for i in page] == whole

    old = [
        r.id for r in filled.recall(type="learning", include_superseded=True) if r.record.superseded
    ]
    assert len(old) == 1
    assert old[0] not in recall_ids(capsys, url, "--type", "learning")
    assert old[0] not in recall_ids(capsys, url, "25-30")
    assert old[0] in recall_ids(capsys, url, "--type", "learning", "--all")
    assert recall_ids(capsys, url, "25-30", "--all") == old


@both_kinds
def test_recall_table_and_nothing_found(filled, url, capsys):
    code, out, err = cli(capsys, "bank", "recall", "video", "--store", url)
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0].split() == ["WHEN", "TYPE", "SCOPE", "KIND", "WHAT"]
    assert len(lines) == 1 + len(filled.recall(text="video"))
    assert any("2024-08-26" in line and "brand:voyage" in line for line in lines[1:])
    for args in (["zebra"], ["--scope", "brand:nobody"], ["engagement", "--since", "1h"]):
        code, out, err = cli(capsys, "bank", "recall", *args, "--store", url)
        assert (code, out, err) == (0, "nothing found\n", ""), args
        assert cli_json(capsys, "bank", "recall", *args, "--store", url) == []


@sqlite_only
def test_recall_fits_80_columns_and_wide_prints_every_word(filled, url, capsys, monkeypatch):
    texts = [r.text for r in filled.recall(limit=100)]
    assert max(map(len, texts)) > 80
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "bank", "recall", "-n", "100", "--store", url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80 and len(lines) == 1 + len(texts)
    assert lines[0].split() == ["WHEN", "TYPE", "SCOPE", "WHAT"]  # KIND gives way first
    assert "…" in out and all(" ".join(t.split())[:20] in out for t in texts)
    code, wide, _ = cli(capsys, "bank", "recall", "-n", "100", "--wide", "--store", url)
    assert code == 0 and all(" ".join(t.split()) in wide for t in texts)
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli(capsys, "bank", "recall", "-n", "100", "--store", url)[1].splitlines()
    assert max(map(len, narrow)) <= 40 and narrow[0].split()[-1] == "WHAT"


@both_kinds
def test_recall_text_with_query_syntax_never_errors(filled, url, capsys):
    hostile = [
        "video AND (ads*",
        '"video',
        '"video ads"',
        "'video'",
        "' OR 1=1 --",
        "NOT video",
        "video OR zebra",
        "NEAR(video ads)",
        "ctr:3",
        "^video",
        "-video",
        "*",
        "%_\\",
        "()",
        '"',
        "",
        "   ",
        "café",
    ]
    for text in hostile:
        # "--" ends the options: a text may start with "-", as "-video" does
        code, out, err = cli(capsys, "bank", "recall", "--json", "--store", url, "--", text)
        assert (code, err) == (0, ""), (text, err)
        assert [r["id"] for r in json.loads(out)] == api_ids(filled, text=text), text
    for text in ("video AND (ads*", '"', "' OR 1=1 --", ""):  # the table, too
        code, out, err = cli(capsys, "bank", "recall", "--store", url, "--", text)
        assert (code, err) == (0, ""), (text, err)
    # words are words: the syntax is ignored, the words still have to match
    assert recall_ids(capsys, url, "video AND (ads*") == api_ids(filled, text="video and ads")
    assert recall_ids(capsys, url, "video AND (ads*") == []  # no record says "and"
    found = recall_ids(capsys, url, '"video" (ads*')
    assert found == api_ids(filled, text="video ads") and len(found) == 1
    assert recall_ids(capsys, url, "video OR zebra") == []


@sqlite_only
def test_recall_bad_arguments(url, filled, capsys):
    for args in (["--since", "yesterday"], ["--type", "memo"], ["-n", "many"]):
        with pytest.raises(SystemExit) as exited:
            main(["bank", "recall", *args])
        assert exited.value.code == 2, args
        capsys.readouterr()
    for args, says in (
        (["--scope", "voyage"], "scope 'voyage' is not a 'kind:id' ref"),
        (["--kind", "a:b"], "contains ':'"),
        (["-n", "0"], "--limit must be at least 1"),
        (["--offset", "-1"], "--offset 0 or more"),
    ):
        code, out, err = cli(capsys, "bank", "recall", *args)
        assert code in (1, 2) and out == "", args
        one_line_error(err, code, code)
        assert says in err, (args, err)


# -- export and import -----------------------------------------------------------------------


@both_kinds
def test_export_is_the_apis_export(filled, url, tmp_path, capsys):
    code, out, err = cli(capsys, "bank", "export", "--store", url)
    assert (code, err) == (0, ""), err
    assert out == json.dumps(filled.export(), indent=2, ensure_ascii=False) + "\n"
    assert json.loads(out) == exported(filled)
    assert "Café shoppers" in out  # not \u00e9
    data = json.loads(out)
    campaign = data["campaign_memory"]["campaigns"]["sim_20250826_051325"]
    assert [v["version"] for v in campaign["versions"]] == [1, 2]
    assert len(campaign["performance_snapshots"]) == 2 and len(campaign["optimizations"]) == 1
    assert len(data["strategic_memory"]["brand_strategies"]["voyage"]["learnings"]) == 3

    path = tmp_path / "bank.json"
    code, out, err = cli(capsys, "bank", "export", "-o", path, "--store", url)
    assert (code, out, err) == (0, "", "")
    assert path.read_text("utf-8") == json.dumps(filled.export(), indent=2, ensure_ascii=False) + (
        "\n"
    )


@both_kinds
def test_brief_recall_and_export_of_an_empty_bank(url, stores, capsys):
    MemoryBank(stores.open(url))  # the store exists, and nothing is in it
    code, out, err = cli(capsys, "bank", "brief", "campaign:x", "--store", url)
    assert (code, out, err) == (0, NOTHING.format("campaign:x") + "\n", "")
    code, out, err = cli(capsys, "bank", "recall", "--store", url)
    assert (code, out, err) == (0, "nothing found\n", "")
    assert export_of(capsys, url) == {
        "campaign_memory": {"campaigns": {}, "entities": {}},
        "strategic_memory": {"brand_strategies": {}, "learnings": {}, "strategic_decisions": []},
    }


@both_kinds
def test_import_into_the_other_kind_makes_the_same_bank(
    filled, url, others, stores, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "bank.json"
    assert cli(capsys, "bank", "export", "-o", path, "--store", url)[0] == 0
    source = exported(filled)

    target = others.url()
    code, out, err = cli(capsys, "bank", "import", path, "--store", target)
    assert (code, err) == (0, ""), err
    assert out == (
        "imported: 3 entities, 2 snapshots, 1 actions, 1 outcomes, 4 learnings, 2 decisions\n"
    )
    assert export_of(capsys, target) == source
    assert exported(MemoryBank(others.open(target))) == source

    code, out, err = cli(capsys, "bank", "import", path, "--store", target)
    assert (code, out, err) == (0, "imported: nothing new\n", "")
    assert set(cli_json(capsys, "bank", "import", path, "--store", target).values()) == {0}
    assert export_of(capsys, target) == source

    # ...and back, into a fresh store of the first kind, through stdin
    code, out, err = cli(capsys, "bank", "export", "--store", target)
    assert (code, err) == (0, ""), err
    home = stores.url()
    code, out, err = cli(
        capsys, "bank", "import", "-", "--store", home, stdin=out, monkeypatch=monkeypatch
    )
    assert (code, err) == (0, ""), err
    assert out.startswith("imported: 3 entities,")
    assert export_of(capsys, home) == source


@both_kinds
def test_a_malformed_document_names_where_and_stores_nothing(filled, url, tmp_path, capsys):
    before = exported(filled)
    bad = {
        "campaigns": {
            "sim_9": {
                "campaign_data": {"name": "new"},
                "performance_snapshots": [{"performance": {"ctr": "high"}}],
            }
        },
        "brand_strategies": {"voyage": {"learnings": [{"type": "t", "insight": "fine"}]}},
    }
    cases = [
        (
            bad,
            "campaigns.sim_9.performance_snapshots[0].performance.ctr: "
            'expected a number, got "high"',
        ),
        (
            {"strategic_memory": {"strategic_decisions": [{"type": "x", "context": {}}]}},
            "strategic_memory.strategic_decisions[0].reasoning: missing",
        ),
        ({"other": 1}, "nothing to import"),
        ([1, 2], "expected a JSON object, got list"),
    ]
    for document, says in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(document))
        code, out, err = cli(capsys, "bank", "import", path, "--store", url)
        one_line_error(err, code, 1)
        assert out == "" and err.startswith(f"muscle-mem: {says}"), err
        assert export_of(capsys, url) == before
    path.write_text("{not json")
    code, out, err = cli(capsys, "bank", "import", path, "--store", url)
    one_line_error(err, code, 1)
    assert err.startswith("muscle-mem: not JSON: ")
    assert export_of(capsys, url) == before


def test_import_of_a_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    code, out, err = cli(capsys, "bank", "import", missing, "--store", tmp_path / "t.db")
    assert (code, out) == (2, "")
    assert err == f"muscle-mem: cannot read {missing}: No such file or directory\n"


@sqlite_only
def test_a_file_that_is_not_utf8_is_one_line_not_a_traceback(
    filled, url, tmp_path, capsys, monkeypatch
):
    """BUG (src/muscle_mem/cli/bank.py, _import): only OSError is caught around the read,
    so a file (or stdin) that is not UTF-8 escapes main() as a UnicodeDecodeError."""
    before = exported(filled)
    path = tmp_path / "latin1.json"
    path.write_bytes(
        '{"learnings": {"brand:voyage": [{"type": "t", "insight": "caf\u00e9"}]}}'.encode("latin-1")
    )
    code, out, err = cli(capsys, "bank", "import", path, "--store", url)
    assert code in (1, 2) and out == ""
    one_line_error(err, code, code)
    assert str(path) in err or "UTF-8" in err.upper()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff{}"), encoding="utf-8"))
    capsys.readouterr()
    code = main(["bank", "import", "-", "--store", url])
    out, err = capsys.readouterr()
    assert code in (1, 2) and out == ""
    one_line_error(err, code, code)
    assert export_of(capsys, url) == before


@sqlite_only
def test_export_to_a_file_that_cannot_be_written_is_one_line(filled, url, tmp_path, capsys):
    """BUG (src/muscle_mem/cli/bank.py, _export): Path.write_text's OSError is not caught,
    so ``-o`` into a missing directory escapes main() as a FileNotFoundError."""
    target = tmp_path / "no" / "such" / "dir" / "bank.json"
    code, out, err = cli(capsys, "bank", "export", "-o", target, "--store", url)
    assert code in (1, 2) and out == ""
    one_line_error(err, code, code)
    assert str(target) in err
    assert not target.parent.exists()


@sqlite_only
def test_import_creates_a_sqlite_store(tmp_path, stores, capsys):
    source = MemoryBank(stores.open(f"sqlite:///{tmp_path}/source.db"))
    source.learn("brand:voyage", "tip", "video wins")
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(source.export()))
    target = tmp_path / "new" / "bank.db"
    target.parent.mkdir()
    code, out, err = cli(capsys, "bank", "import", path, "--store", f"sqlite:///{target}")
    assert (code, out, err) == (0, "imported: 1 learnings\n", "")
    assert target.exists()
    assert export_of(capsys, f"sqlite:///{target}") == exported(source)


# -- through the installed script ------------------------------------------------------


@sqlite_only
def test_brief_from_the_installed_script(filled, url):
    done = script("bank", "brief", "brand:voyage", "--budget", 600, store=url)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == filled.brief("brand:voyage", budget_chars=600) + "\n"


@sqlite_only  # into PostgreSQL
def test_export_piped_into_import_between_two_stores_with_the_script(filled, url, others):
    target = others.url()
    export_err, importer = piped(
        ["bank", "export"], ["bank", "import", "-", "--store", target], url
    )
    assert (importer.returncode, importer.stderr, export_err) == (0, "", b""), importer.stderr
    assert importer.stdout.startswith("imported: 3 entities, 2 snapshots, 1 actions")
    assert exported(MemoryBank(others.open(target))) == exported(filled)


# -- errors ------------------------------------------------------------------------------------


def test_read_commands_never_create_a_store(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "cache.db"
    for args in (
        ["bank", "brief", "brand:voyage"],
        ["bank", "recall", "video"],
        ["bank", "recall", "--json"],
        ["bank", "export"],
        ["bank", "export", "-o", tmp_path / "out.json"],
    ):
        for store in (f"sqlite:///{missing}", str(missing)):
            code, out, err = cli(capsys, *args, "--store", store)
            one_line_error(err, code, 2)
            assert out == "" and err.startswith(f"muscle-mem: no store at {missing}"), err
    done = script("bank", "brief", "brand:voyage", store=f"sqlite:///{missing}")
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"muscle-mem: no store at {missing}")
    assert not missing.exists() and not missing.parent.exists()
    assert not (tmp_path / "out.json").exists()


def test_bank_without_a_subcommand_exits_2_with_usage(capsys):
    code, out, err = cli(capsys, "bank")
    one_line_error(err, code, 2)
    assert out == ""
    assert err == (
        "muscle-mem: say what: muscle-mem bank brief SCOPE | recall [TEXT] | export | import FILE\n"
    )
    with pytest.raises(SystemExit) as exited:
        main(["bank", "forget"])
    assert exited.value.code == 2
    assert "invalid choice: 'forget'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["bank", "brief"])  # no scope
    assert exited.value.code == 2
    assert "scope" in capsys.readouterr().err


def test_a_memory_store_is_refused(capsys):
    code, out, err = cli(capsys, "bank", "brief", "brand:voyage", "--store", "memory://")
    one_line_error(err, code, 2)
    assert out == ""
    assert "lives inside one process" in err


# -- the bank and the cache share one store --------------------------------------------


@sqlite_only
def test_the_bank_and_the_cache_share_one_sqlite_file(tmp_path, stores, capsys):
    url = f"sqlite:///{tmp_path}/shared.db"
    done = []
    engine = Engine(store=stores.open(url))

    @engine.function
    def raise_bid(campaign, by):
        done.append((campaign, by))

    def agent(task, campaign):
        raise_bid(campaign, 0.1)
        muscle_mem.report_usage(tokens=100, cost=0.01)

    engine.set_agent(agent)
    campaign = "campaign:sim_20250826_051325"
    assert engine("raise the bid", "sim_1", about=campaign).status == "miss"
    assert engine("raise the bid", "sim_1", about=campaign).status == "hit"
    assert len(done) == 2

    # the cache's file, before the bank wrote anything to it
    code, out, err = cli(capsys, "bank", "brief", campaign, "--store", url)
    assert (code, out, err) == (0, NOTHING.format(campaign) + "\n", "")
    assert cli_json(capsys, "bank", "recall", "--store", url) == []

    bank = fill(MemoryBank(stores.open(url)))
    assert [run.status for run in bank.episodes(campaign)] == ["hit", "miss"]
    code, out, err = cli(capsys, "bank", "brief", campaign, "--store", url)
    assert (code, err) == (0, ""), err
    assert out == bank.brief(campaign) + "\n" and "Voyage Summer Collection 2024" in out

    stats = cli_json(capsys, "stats", "--store", url)
    assert stats == json.loads(json.dumps(stats))  # (it is JSON)
    code, out, err = cli(capsys, "stats", "--store", url)
    assert (code, err) == (0, ""), err
    assert cli(capsys, "ls", "--store", url)[0] == 0
    assert len(cli_json(capsys, "runs", "--store", url)) == 2
    assert export_of(capsys, url) == exported(bank)
