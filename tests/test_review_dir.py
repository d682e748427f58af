"""A cache reviewed in git: ``export --dir``, ``approve``, ``import --dir``, and a strict
replay that honours what the reviewer approved.

Runs on SQLite files (the command line refuses a memory store); the library functions
under the commands run on every store kind in the tests that ask for ``stores``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from muscle_mem import Check, Engine, ReplayMissError
from muscle_mem.cli import main
from muscle_mem.errors import ExportFormatError
from muscle_mem.portable import export_lines, import_into, read_export
from muscle_mem.portable_dir import export_dir, file_name, read_dir
from muscle_mem.store import open_store

TAGS = ["optimization-workflows"]


@dataclasses.dataclass(frozen=True)
class Slot:
    day: dt.date
    seats: tuple[int, ...]


def audit_engine(store, world, **options):
    """Audits a landing page: on page v1 it reads the page and sets a goal; on v2 it
    reads the page, then books a slot (values of many types) with the audit's owner."""
    engine = Engine(store=store, **options)

    @engine.function(pre_check=Check(lambda url: world["page"]))
    def read_page(url):
        return {"url": url, "cta": world["page"]}

    @engine.function(pre_check=Check(lambda name, value: world["page"]))
    def set_goal(name, value):
        world.setdefault("done", []).append(("goal", name, value))

    @engine.function
    def book(slot, note, raw):
        world.setdefault("done", []).append(("book", slot, note, raw))

    def agent(task):
        owner = task.rsplit(" ", 1)[1]
        read_page(f"https://shop.example/{owner}")
        if world["page"] == "v1":
            set_goal("signup", {"owner": owner, "weights": (0.5, 1.0), "{literal}": "⟨x⟩"})
        else:
            book(Slot(dt.date(2026, 5, 1), (1, 2)), f"for {owner} {{soon}}", b"\x00\xff")
        return f"audited for {owner}"

    engine.set_agent(agent)
    return engine


def audit(engine, owner, **options):
    return engine(
        f"audit the landing page of {owner}", params={"owner": owner}, tags=TAGS, **options
    )


def record_two_paths(store):
    world = {"page": "v1"}
    engine = audit_engine(store, world)
    audit(engine, "acme")
    world["page"] = "v2"
    audit(engine, "globex")
    return engine


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def the_file(folder):
    [path] = (Path(folder) / "optimization-workflows").glob("*.json")
    return path


def test_export_edit_an_approval_import_and_a_strict_replay_honours_it(tmp_path, capsys):
    source = f"sqlite:///{tmp_path}/source.db"
    engine = record_two_paths(open_store(source))
    engine.store.close()
    folder = tmp_path / "muscle-mem-cache"
    assert cli(capsys, "export", "--dir", folder, "--store", source)[0] == 0

    path = the_file(folder)
    assert path.name.startswith("audit-the-landing-page-of-owner.")
    data = json.loads(path.read_text())
    assert (data["text"], data["tags"]) == ("audit the landing page of {owner}", TAGS)
    v1, v2 = data["paths"]
    assert [s["call"] for s in v1["steps"]] == [
        {"args": ["https://shop.example/{owner}"], "kwargs": {}},
        {
            "args": [
                "signup",
                {
                    "owner": "{owner}",
                    "weights": {"$tuple": [0.5, 1.0]},
                    "{literal}": {"$str": "⟨x⟩"},
                },
            ],
            "kwargs": {},
        },
    ]
    assert v2["steps"][0]["shared"] == "path 1" and "pre" not in v2["steps"][0]
    assert v2["steps"][1]["call"]["args"][1:] == ["for {owner} {{soon}}", {"$bytes": "AP8="}]
    assert v1["steps"][0]["pre"] == ["v1", "v2"]
    assert v2["result"] == "audited for {owner}"
    assert (v1["approved"], v2["approved"]) == (False, False)

    # The reviewer approves path 1 in the file; path 2 stays unapproved.
    data["paths"][0]["approved"] = True
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    target = f"sqlite:///{tmp_path}/fresh.db"
    code, out, err = cli(capsys, "import", "--dir", folder, "--store", target)
    assert (code, err) == (0, "")
    assert "1 approval(s) changed" in out

    world = {"page": "v1"}
    strict = audit_engine(open_store(target), world, mode="replay", approved_only=True)
    hit = audit(strict, "initech")
    assert hit.hit and hit.result == "audited for initech"
    assert world["done"] == [
        ("goal", "signup", {"owner": "initech", "weights": (0.5, 1.0), "{literal}": "⟨x⟩"})
    ]
    world["page"] = "v2"
    with pytest.raises(ReplayMissError, match="not approved"):
        audit(strict, "umbrella")
    assert [t.approved for t in strict.store.tasks()] == [1]


def test_exporting_twice_writes_the_same_bytes_and_a_change_touches_one_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cache.db"
    store = open_store(url)
    engine = record_two_paths(store)
    folder = tmp_path / "review"
    assert cli(capsys, "export", "--dir", folder, "--store", url, "--json")[1]
    before = {p: p.read_bytes() for p in folder.rglob("*.json")}
    out = cli(capsys, "export", "--dir", folder, "--store", url, "--json")[1]
    assert json.loads(out) == {"dir": str(folder), "files_changed": 0, "files_removed": 0}
    assert {p: p.read_bytes() for p in folder.rglob("*.json")} == before
    audit(engine, "hooli", mode="replay")  # a hit: counts move, the file does not
    assert cli(capsys, "export", "--dir", folder, "--store", url)[0] == 0
    assert {p: p.read_bytes() for p in folder.rglob("*.json")} == before

    key = engine.task_key("audit the landing page of x", params={"owner": "x"}, tags=TAGS)
    store.approve(key, [store.tree(key).ends()[1].id])
    out = cli(capsys, "export", "--dir", folder, "--store", url)[1]
    assert out.strip().endswith("1 file(s) written or changed, 0 removed")
    assert the_file(folder).read_bytes() != before[the_file(folder)]

    store.remove(key)
    cli(capsys, "export", "--dir", folder, "--store", url)
    assert not list(folder.rglob("*.json"))  # a key that is gone takes its file along
    assert not (folder / "optimization-workflows").exists()


def test_counts_are_left_out_unless_asked_for(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cache.db"
    record_two_paths(open_store(url))
    cli(capsys, "export", "--dir", tmp_path / "a", "--store", url)
    cli(capsys, "export", "--dir", tmp_path / "b", "--store", url, "--counts")
    plain = json.loads(the_file(tmp_path / "a").read_text())["paths"][0]["steps"][0]
    counted = json.loads(the_file(tmp_path / "b").read_text())["paths"][0]["steps"][0]
    assert "hits" not in plain and "last_used" not in plain
    assert counted["hits"] == 0 and counted["last_used"].endswith("+00:00")
    assert cli(capsys, "export", "--counts", "--store", url)[0] == 2  # only with --dir


def test_a_folder_round_trips_every_row_exactly(stores, tmp_path):
    source = stores.fresh()
    record_two_paths(source)
    export_dir(source, tmp_path / "out")
    target = stores.fresh()
    imported = read_dir(tmp_path / "out")
    assert import_into(target, imported) == (3, 3)  # steps; the pages they were seen on
    [info] = source.tasks()
    mine, theirs = source.tree(info.task_key), target.tree(info.task_key)
    assert set(mine.nodes) == set(theirs.nodes)
    for node in mine:
        other = theirs.nodes[node.id]
        assert (other.step, other.result, other.terminal) == (node.step, node.result, node.terminal)
        for which in ("pre", "post", "end"):
            assert sorted(other.snapshots(which)) == sorted(node.snapshots(which))
    assert target.tasks()[0].text == info.text
    # Exported again from where it landed: the very same files.
    export_dir(target, tmp_path / "again")
    assert the_file(tmp_path / "again").read_bytes() == the_file(tmp_path / "out").read_bytes()


def test_json_lines_carry_the_task_words_and_approvals(stores):
    source = stores.fresh()
    record_two_paths(source)
    [info] = source.tasks()
    source.approve(info.task_key, [source.tree(info.task_key).ends()[0].id])
    target = stores.fresh()
    import_into(target, read_export(list(export_lines(source))))
    [landed] = target.tasks()
    assert (landed.text, landed.approved) == (info.text, 1)
    assert [e.approved for e in target.tree(info.task_key).ends()] == [True, False]


def test_tags_name_the_folder():
    from muscle_mem.models import TaskInfo

    def name(tags, text="Fill the form for {name}!"):
        return file_name(TaskInfo("task1:3f2a9c1b00", tuple(tags), 1, 1, 0.0, 0.0, text))

    assert name(["signup"]) == Path("signup/fill-the-form-for-name.3f2a9c1b.json")
    assert name(["b", "A b"]) == Path("a-b+b/fill-the-form-for-name.3f2a9c1b.json")
    assert name([], "") == Path("untagged/task.3f2a9c1b.json")


def test_an_edited_call_is_refused_naming_the_file_and_field(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cache.db"
    record_two_paths(open_store(url))
    folder = tmp_path / "review"
    cli(capsys, "export", "--dir", folder, "--store", url)
    path = the_file(folder)
    data = json.loads(path.read_text())
    data["paths"][0]["steps"][0]["call"]["args"] = ["https://evil.example/"]
    path.write_text(json.dumps(data))
    code, _, err = cli(capsys, "import", "--dir", folder, "--store", f"sqlite:///{tmp_path}/t.db")
    assert code == 1
    assert f"optimization-workflows/{path.name}: paths[0].steps[0]: step " in err
    assert "does not match its tool, code and call" in err and "nothing was imported" in err
    data["paths"][0]["steps"][0]["call"]["args"] = ["a {lone brace"]
    path.write_text(json.dumps(data))
    err = cli(capsys, "import", "--dir", folder, "--store", f"sqlite:///{tmp_path}/t.db")[2]
    assert "paths[0].steps[0].call.args[0]: a lone '{'" in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), "not a muscle-mem review file"),
        (lambda d: d.update(version=9), "review format 9 is newer"),
        (lambda d: d["paths"][0].update(approved="yes"), "paths[0].approved: must be bool"),
        (lambda d: d["paths"][0].update(steps=[]), "paths[0].steps: a path has at least one"),
        (lambda d: d["paths"][0]["steps"][0].update(call={"x": 1}), "steps[0].call: expected"),
        (
            lambda d: d["paths"][0]["steps"][0].update(pre=[{"$what": 1}]),
            "steps[0].pre[0]: '$what' is not a type",
        ),
        # JSON can spell a lone surrogate; no store can hold one.
        (lambda d: d.update(text="audit \ud800"), "text: is not valid Unicode"),
        (lambda d: d.update(tags=["ok", "\ud800"]), "tags[1] is not valid Unicode"),
        (lambda d: d.update(tags=["ok", 5]), "tags[1] must be str, got 5"),
        (
            lambda d: d["paths"][0]["steps"][0].update(tool="fill\ud800"),
            "steps[0].tool: is not valid Unicode",
        ),
    ],
)
def test_a_broken_file_is_refused_with_one_line(stores, tmp_path, edit, message):
    source = stores.fresh()
    record_two_paths(source)
    export_dir(source, tmp_path)
    path = the_file(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ExportFormatError, match=rf"^optimization-workflows/.*{_escape(message)}"):
        read_dir(tmp_path)


def _escape(text):
    import re

    return re.escape(text)


def test_a_signed_folder_brings_in_only_what_the_secret_signed(stores, tmp_path):
    source = stores.fresh()
    record_two_paths(source)
    export_dir(source, tmp_path, secret="s3cret")
    path = the_file(tmp_path)
    data = json.loads(path.read_text())
    assert data["signed"] and len(data["paths"][0]["steps"][0]["sig"]) == 64
    data["paths"][0]["steps"][0]["pre"][0]["value"] = "v9"  # a forged environment
    path.write_text(json.dumps(data))
    imported = read_dir(tmp_path, secret="s3cret")
    assert (imported.rejected, imported.snapshots) == (1, 2)
    # Another secret: no step holds, so no path comes in.
    assert read_dir(tmp_path, secret="other").nodes == 0


def test_approve_by_text_and_path_number_and_revoke(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cache.db"
    store = open_store(url)
    engine = record_two_paths(store)
    key = engine.task_key("audit the landing page of x", params={"owner": "x"}, tags=TAGS)
    code, out, err = cli(capsys, "approve", "Audit the landing", "--path", 2, "--store", url)
    assert (code, err) == (0, "")
    assert (
        out
        == f"{key[6:18]} (audit the landing page of {{owner}}): path(s) 2 approved (1 changed)\n"
    )
    assert [e.approved for e in open_store(url).tree(key).ends()] == [False, True]
    code, out, _ = cli(capsys, "show", key[6:12], "--store", url)
    assert "path 1 ends here (not approved)" in out and "path 2 ends here (approved)" in out
    assert json.loads(cli(capsys, "approve", key[6:12], "--store", url, "--json")[1]) == {
        "task_key": key,
        "text": "audit the landing page of {owner}",
        "paths": [1, 2],
        "approved": True,
        "changed": 1,
    }
    assert cli(capsys, "approve", key[6:12], "--revoke", "--path", 1, "--store", url)[0] == 0
    assert [e.approved for e in open_store(url).tree(key).ends()] == [False, True]
    code, _, err = cli(capsys, "approve", key[6:12], "--path", 3, "--store", url)
    assert code == 1 and "has 2 path(s), numbered 1 to 2" in err and "no path 3" in err


def test_two_keys_that_would_share_a_file_name_get_one_each(tmp_path):
    from muscle_mem import MemoryStore
    from muscle_mem.models import TaskInfo

    twins = [
        TaskInfo(f"task1:3f2a9c1b{end * 24}", ("signup",), 0, 0, 0.0, 0.0, "fill it")
        for end in "0f"
    ]
    assert export_dir(MemoryStore(), tmp_path, twins) == (2, 0)
    assert sorted(p.name for p in (tmp_path / "signup").iterdir()) == [
        "fill-it.3f2a9c1b.json",
        f"fill-it.3f2a9c1b{'f' * 24}.json",
    ]
