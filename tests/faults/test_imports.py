"""Bad imports: an export cut short, lines taken out, rows crafted to pass the id check,
lines nested past any parser. Import brings in complete paths only, or nothing, and
says why in one line (ExportFormatError; exit 1 from the command line)."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import kinds
from muscle_mem import ConfigurationError, ExportFormatError
from muscle_mem.cli import main
from muscle_mem.codec import encode
from muscle_mem.models import Step, node_id
from muscle_mem.portable import export_lines, import_into, read_export
from muscle_mem.store import open_store
from muscle_mem.trie import Tree

from .common import figures, new_world, pay, pay_engine


@pytest.fixture
def exported(tmp_path):
    """The export of a store holding two task keys: a payment of two steps recorded
    twice (a branch), and a second task of one step."""
    store = open_store(tmp_path / "source.db")
    world = new_world()
    engine = pay_engine(store, world)
    pay(engine, "ann")
    world["page"] = "v2"
    pay(engine, "bob", "300")  # the payee step learns v2; a new amount step
    engine("other", "ann", "1", params={"payee": "ann"})
    lines = list(export_lines(store))
    store.close()
    return lines


def complete(store):
    """Whether every step in the store lies on the way to a recorded end."""
    for info in store.tasks():
        tree = store.tree(info.task_key)
        for node in tree:
            below = [node]
            ends = False
            while below:
                current = below.pop()
                ends = ends or current.terminal
                below.extend(current.children)
            if node.step is not None and not ends:
                return False
    return True


def test_an_export_cut_at_any_line_is_refused_whole(exported, tmp_path, capsys):
    assert len(exported) > 8
    for cut in range(1, len(exported)):
        with pytest.raises(ExportFormatError, match=r"cut short|ends inside|before the end"):
            read_export(exported[:cut])
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(exported[:-3]) + "\n")
    target = tmp_path / "target.db"
    assert main(["import", str(path), "--store", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "it was cut short (export it again); nothing was imported" in err
    assert not target.exists()
    read_export(exported)  # whole, it reads
    figures("cut exports", cuts=len(exported) - 1, refused=len(exported) - 1, imported=0)


def test_lines_taken_out_or_moved_are_refused(exported):
    kinds = [next(iter(json.loads(line))) for line in exported]
    node = kinds.index("node")
    snapshot = kinds.index("snapshot")
    end = kinds.index("end")
    for broken, why in [
        (exported[:node] + exported[node + 1 :], "comes before its parent"),
        (_without_last_step(exported), r"should have 2 node and 2 snapshot lines, but has 1 and 1"),
        (exported[:snapshot] + exported[snapshot + 1 :], "snapshot lines, but has"),
        (exported[:end] + exported[end + 1 :], "begins before task .* ended"),
        (exported[: end + 1] + exported[end + 1 :][-1:], "holds 1|holds 2"),
        (exported + exported[-1:], "after the file's last line"),
    ]:
        with pytest.raises(ExportFormatError, match=why):
            read_export(broken)


def _without_last_step(lines):
    """The file without the first task's last node line and its snapshot lines."""
    rows = [json.loads(line) for line in lines]
    first_end = next(i for i, row in enumerate(rows) if "end" in row)
    last = [row for row in rows[:first_end] if "node" in row][-1]["node"]
    return [
        line
        for line, row in zip(lines, rows, strict=True)
        if last not in (row.get("node"), row.get("snapshot"))
    ]


def _old_format(lines):
    """The file an older muscle-mem (format 1) wrote: no counts."""
    header = {**json.loads(lines[0]), "version": 1}
    kept = [line for line in lines[1:] if next(iter(json.loads(line))) not in ("end", "done")]
    return [json.dumps(header), *kept]


def test_an_old_export_cut_anywhere_imports_complete_paths_only(exported, tmp_path):
    old = _old_format(exported)
    for cut in range(1, len(old) + 1):
        imported = read_export(old[:cut])
        store = open_store(tmp_path / f"cut{cut}.db")
        import_into(store, imported)
        assert complete(store), cut
        # What was imported replays only to a recorded end: a run hits the whole
        # recorded payment, or the agent does what replay could not (a cut may have
        # left a step without the environment it was recorded in).
        world = new_world()
        outcome = pay(pay_engine(store, world), "cy")
        assert outcome.status in ("hit", "miss", "handoff")
        assert world["log"] == [("payee", "cy"), ("amount", "200")]
        store.close()
    figures("cut format-1 exports", cuts=len(old), partial_paths_imported=0, unsafe=0)
    partial = read_export(old[:3])  # a task line, then its first node only
    assert (partial.nodes, partial.incomplete) == (0, 1)


def test_a_cut_old_export_says_what_it_left_out(exported, tmp_path, capsys):
    old = _old_format(exported)
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(old[:3]) + "\n")
    assert main(["import", str(path), "--store", str(tmp_path / "t.db")]) == 1
    _, err = capsys.readouterr()
    assert "1 steps were left out: no recorded path in the file ends at or below them" in err


def _crafted(exported, call=None, data=None, result=None):
    """The export with its first node given ``call`` (and the id that content hashes
    to), or its first snapshot given ``data``, or its first end given ``result``."""
    rows = [json.loads(line) for line in exported]
    first = next(row for row in rows if "node" in row)
    if call is not None:
        step = Step(first["tool"], first["code"], call)
        old, new = first["node"], node_id(first["parent"], step)
        first["call"] = base64.b64encode(call).decode()
        for row in rows:  # children and snapshots follow the node's new id
            for key in ("node", "parent", "snapshot"):
                if row.get(key) == old:
                    row[key] = new
    if data is not None:
        snap = next(row for row in rows if "snapshot" in row)
        snap["data"] = base64.b64encode(data).decode()
    if result is not None:
        end = next(row for row in rows if row.get("result"))
        end["result"] = base64.b64encode(result).decode()
    return [json.dumps(row) for row in rows]


@pytest.mark.parametrize(
    ("craft", "why"),
    [
        ({"call": b"5"}, "not a tool call's arguments"),
        ({"call": encode([1, 2, 3])}, "not a tool call's arguments"),
        ({"call": b"[" * 100_000 + b"]" * 100_000}, "nested too deeply"),
        ({"data": b'{"t":5}'}, "a list was expected"),
        ({"data": b'{"dt":"nope"}'}, "Invalid isoformat"),
        ({"result": b'{"zz":1}'}, "result: not a muscle-mem encoding"),
    ],
    ids=["call-5", "call-list", "call-deep", "snapshot-tuple-5", "snapshot-bad-date", "result"],
)
def test_a_row_whose_id_matches_but_that_muscle_mem_never_writes_is_refused(exported, craft, why):
    with pytest.raises(ExportFormatError, match=rf"is not what muscle-mem writes \(.*{why}"):
        read_export(_crafted(exported, **craft))


def test_a_line_nested_past_any_parser_is_a_one_line_error(exported, tmp_path, capsys):
    deep = "[" * 100_000 + "]" * 100_000
    for lines in ([exported[0], deep], [deep]):
        path = tmp_path / "deep.jsonl"
        path.write_text("\n".join(lines) + "\n")
        assert main(["import", str(path), "--store", str(tmp_path / "t.db")]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, err
        assert "nested too deeply" in err and "Recursion" not in err


def test_rows_that_fail_the_secret_take_the_paths_through_them_along(tmp_path):
    store = open_store(tmp_path / "signed.db", secret="s3cret")
    world = new_world()
    pay(pay_engine(store, world), "ann")
    lines = list(export_lines(store, secret="s3cret"))
    store.close()
    rows = [json.loads(line) for line in lines]
    end = next(row for row in rows if row.get("terminal"))
    end["sig"] = base64.b64encode(b"\0" * 32).decode()  # the end fails its signature
    imported = read_export([json.dumps(row) for row in rows], secret="s3cret")
    # The end is rejected (with its snapshot); the step before it now ends nowhere and
    # is left out too.
    assert (imported.rejected, imported.incomplete, imported.nodes) == (2, 1, 0)


@kinds("sqlite", "postgres")
def test_a_tree_whose_ids_do_not_hash_their_content_is_not_merged(stores):
    store = stores.fresh()
    tree = Tree("task1:" + "0" * 32)
    node = tree.insert(tree.root, Step("tool", "code", encode(((), {}))))
    node.terminal = True
    node.id = "f" * 32  # not what its parent and step hash to
    with pytest.raises(ConfigurationError, match="does not match its content"):
        store.merge(tree, ())
    assert store.tasks() == []
