"""Cached trees as JSON lines, to move them between stores.

Record on a laptop's SQLite file, import into the fleet's PostgreSQL. The file holds a
header line, then per task key one ``task`` line followed by its ``node`` lines
(parents first) and ``snapshot`` lines (least recently matched first) and an ``end``
line counting them, then a ``done`` line counting the task keys. Bytes are base64. The
run log is history of the store it happened in and is not exported.

Import brings in complete paths only. The counts say what complete means for a file:
one cut short (a transfer that stopped, a disk that filled), or with lines taken out,
is refused whole. Files of format 1 have no counts; from them, and wherever rows fail
their signature, only steps on the way to a recorded end are taken: a step that ends
nowhere is left out, and said so.

A node's id is the hash of its parent's id and its step, so import checks every id
against what the line says: a step whose tool, code or arguments were altered, or that
was moved under another parent, is refused even without a secret, and so is a step
whose content hashes right but is not what muscle-mem writes (a call that is not a
call, a value that is not an encoding): every decoded row is checked as a store checks
what it loads (:mod:`muscle_mem.store.rows`). With a secret, each
node and snapshot also carries its HMAC, and import skips the rows that fail it. A
recorded end's ``result`` (what its hits return) is not part of the id: only its own
HMAC (``result_sig``) covers it, and a node whose result fails it is skipped. The
counts (hits, failures, last use) and where trajectories end are covered by neither:
they steer pruning, stats and where a replay may end, never what a replay calls.
Files written before results were kept have no ``result``: their ends return None.
A task line carries the task's words (``text``) and a node line whether its path is
approved (``approved``); neither is signed in the file: an import merges approvals
into the store, which signs them with its own secret, so only whoever holds it can
bring an approval in (see :meth:`~muscle_mem.store.Store.approve`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ExportFormatError
from .models import SLOTS, Step, TaskInfo, node_id
from .store import rows
from .store.base import Store
from .store.signing import secret_key, sign_node, sign_result, sign_snapshot, valid
from .trie import Tree

FORMAT = 2  # 2: each task key's lines end with a count, and the file with a count of keys
_HEADER = "muscle-mem cache"


@dataclass
class Imported:
    """What an import file holds, checked and ready to merge into a store."""

    trees: dict[str, tuple[tuple[str, ...], Tree]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # the tasks' words, where known
    nodes: int = 0
    snapshots: int = 0
    rejected: int = 0  # rows that failed the secret's verification, or hung from one
    incomplete: int = 0  # steps left out because no recorded path ends at or below them
    signed: bool = False  # the file says its rows carry signatures


def export_lines(
    store: Store,
    tasks: Sequence[TaskInfo] | None = None,
    *,
    secret: str | bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[str]:
    """The store's trees (or those of ``tasks``, from ``store.tasks()``) as lines of
    JSON, without newlines.

    With ``secret``, every row is signed, so that an importer holding it can verify them.
    """
    key = secret_key(secret)
    if tasks is None:
        tasks = store.tasks()
    yield json.dumps({"format": _HEADER, "version": FORMAT, "signed": key is not None})
    for done, info in enumerate(tasks, 1):
        task = info.task_key
        tree = store.tree(task)
        yield json.dumps({"task": task, "tags": list(info.tags), "text": info.text})
        snapshots = []
        nodes = 0
        for node in tree:
            if node.step is None:
                continue
            assert node.parent is not None
            nodes += 1
            yield json.dumps(
                {
                    "node": node.id,
                    "task": task,
                    "parent": node.parent,
                    "tool": node.step.tool,
                    "code": node.step.code,
                    "call": _b64(node.step.call),
                    "terminal": node.terminal,
                    "approved": node.approved,
                    "hits": node.hits,
                    "failures": node.failures,
                    "last_used": node.last_used,
                    "sig": _b64(sign_node(key, node.id, node.parent, task, node.step)),
                    "result": _b64(node.result),
                    "result_sig": _b64(sign_result(key, node.id, task, node.result))
                    if node.terminal or node.result is not None
                    else None,
                }
            )
            for which in SLOTS:
                for data in node.snapshots(which):
                    sig = _b64(sign_snapshot(key, node.id, which, data))
                    snapshots.append(
                        {"snapshot": node.id, "which": which, "data": _b64(data), "sig": sig}
                    )
        yield from map(json.dumps, snapshots)
        yield json.dumps({"end": task, "nodes": nodes, "snapshots": len(snapshots)})
        if progress is not None:
            progress(done, len(tasks))
    yield json.dumps({"done": _HEADER, "tasks": len(tasks)})


def read_export(lines: Iterable[str], *, secret: str | bytes | None = None) -> Imported:
    """Parse and check an export. Raises :class:`ExportFormatError` naming the first
    broken line; nothing is read into any store until the whole file checks out."""
    reader = _Reader(secret_key(secret))
    version = None
    number = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            row = json.loads(line)
        except ValueError as error:
            raise ExportFormatError(f"{where}: not JSON ({error})") from None
        except RecursionError:
            raise ExportFormatError(f"{where}: not an export line (nested too deeply)") from None
        if not isinstance(row, dict):
            raise ExportFormatError(f"{where}: expected a JSON object")
        if version is None:
            if row.get("format") != _HEADER:
                raise ExportFormatError(
                    f"{where}: not a muscle-mem export (it starts with the line "
                    "`muscle-mem export` writes)"
                )
            version = row.get("version")
            if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT:
                raise ExportFormatError(
                    f"{where}: export format {row.get('version')!r} is newer than this "
                    f"muscle-mem reads ({FORMAT}); upgrade muscle-mem"
                )
            reader.counted = version >= 2
            reader.imported.signed = row.get("signed") is True
            continue
        reader.line(row, where)
    if version is None:
        raise ExportFormatError("the file is empty: expected a `muscle-mem export`")
    reader.finish(number)
    return reader.imported


def import_into(
    store: Store, imported: Imported, *, progress: Callable[[int, int], None] | None = None
) -> tuple[int, int]:
    """Merge what was read into ``store``, one transaction per task key; returns how
    many nodes and snapshots were new there."""
    new_nodes = new_snapshots = 0
    items = list(imported.trees.values())
    for done, (tags, tree) in enumerate(items, 1):
        if len(tree):
            nodes, snapshots = store.merge(tree, tags, imported.texts.get(tree.task_key))
            new_nodes += nodes
            new_snapshots += snapshots
        if progress is not None:
            progress(done, len(items))
    return new_nodes, new_snapshots


class _Reader:
    """Builds the trees of an export line by line, checking each row as it comes."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.imported = Imported()
        self.owners: dict[str, Tree] = {}  # node id -> its tree
        self.dropped: set[str] = set()  # node ids rejected, and so their subtrees
        self.counted = False  # the file counts its lines (format 2)
        self.open: str | None = None  # the task key whose lines come now (format 2)
        self.seen = [0, 0]  # that task's node and snapshot lines so far
        self.ended = 0  # task keys whose end line has come
        self.done = False  # the file's last line has come

    def line(self, row: dict[str, Any], where: str) -> None:
        if self.done:
            raise ExportFormatError(f"{where}: a line after the file's last line")
        if "task" in row and "node" not in row:
            task = _field(row, "task", str, where)
            tags = tag_values(_field(row, "tags", list, where), f"{where}: tags")
            if self.counted:
                if self.open is not None:
                    raise ExportFormatError(
                        f"{where}: task {task} begins before task {self.open} ended"
                    )
                if task in self.imported.trees:
                    raise ExportFormatError(f"{where}: task {task} comes twice")
                self.open, self.seen = task, [0, 0]
            self.imported.trees.setdefault(task, (tuple(tags), Tree(task)))
            if row.get("text"):
                self.imported.texts[task] = _field(row, "text", str, where)
        elif "node" in row:
            self._in_open_task(_field(row, "task", str, where), where)
            self.seen[0] += 1
            self.node(row, where)
        elif "snapshot" in row:
            self._in_open_task(None, where)
            owner = self.owners.get(row["snapshot"]) if isinstance(row["snapshot"], str) else None
            if self.counted and owner is not None and owner.task_key != self.open:
                raise ExportFormatError(
                    f"{where}: a snapshot of task {owner.task_key} outside that task's lines"
                )
            self.seen[1] += 1
            self.snapshot(row, where)
        elif "end" in row and self.counted:
            self._end(row, where)
        elif "done" in row and self.counted:
            tasks = _count(row, "tasks", where)
            if self.open is not None:
                raise ExportFormatError(f"{where}: the file ends inside task {self.open}")
            if tasks != len(self.imported.trees) or tasks != self.ended:
                raise ExportFormatError(
                    f"{where}: the file says it holds {tasks} task keys, but it holds "
                    f"{len(self.imported.trees)}: lines were taken out"
                )
            self.done = True
        else:
            raise ExportFormatError(f"{where}: expected a task, node or snapshot line")

    def _in_open_task(self, task: str | None, where: str) -> None:
        if self.counted and (self.open is None or (task is not None and task != self.open)):
            raise ExportFormatError(
                f"{where}: a line of task {task or 'unknown'} outside that task's lines"
            )

    def _end(self, row: dict[str, Any], where: str) -> None:
        task = _field(row, "end", str, where)
        if task != self.open:
            raise ExportFormatError(f"{where}: the end of task {task}, which is not open")
        expected = [_count(row, "nodes", where), _count(row, "snapshots", where)]
        if expected != self.seen:
            raise ExportFormatError(
                f"{where}: task {task} should have {expected[0]} node and {expected[1]} "
                f"snapshot lines, but has {self.seen[0]} and {self.seen[1]}: lines were "
                "taken out or added"
            )
        self.open = None
        self.ended += 1

    def finish(self, last: int) -> None:
        """After the last line: refuse a counted file that stops short, and leave out of
        every tree the steps no recorded path ends at or below (see the module)."""
        if self.counted and not self.done:
            where = f"task {self.open}" if self.open is not None else "its last line"
            raise ExportFormatError(
                f"the file stops at line {last}, before the end of {where}: it was cut "
                "short (export it again)"
            )
        for _, tree in self.imported.trees.values():
            self._complete_paths(tree)

    def _complete_paths(self, tree: Tree) -> None:
        reaching: set[str] = set()  # ids of nodes at or above a recorded end
        for node in tree:
            if node.terminal and node.step is not None:
                nid: str | None = node.id
                while nid is not None and nid not in reaching:
                    reaching.add(nid)
                    nid = tree.nodes[nid].parent
        doomed = [n for n in tree if n.step is not None and n.id not in reaching]
        if not doomed:
            return
        for node in doomed:
            del tree.nodes[node.id]
            self.owners.pop(node.id, None)
            self.imported.nodes -= 1
            self.imported.snapshots -= sum(len(node.snapshots(which)) for which in SLOTS)
        self.imported.incomplete += len(doomed)
        for node in tree:
            node.children = tuple(c for c in node.children if c.id in tree.nodes)

    def node(self, row: dict[str, Any], where: str) -> None:
        nid = _field(row, "node", str, where)
        task = _field(row, "task", str, where)
        parent = _field(row, "parent", str, where)
        step = Step(
            _field(row, "tool", str, where),
            _field(row, "code", str, where),
            _bytes(row, "call", where),
        )
        if task not in self.imported.trees:
            raise ExportFormatError(f"{where}: node of task {task}, which no earlier line names")
        tree = self.imported.trees[task][1]
        if node_id(parent, step) != nid:
            raise ExportFormatError(
                f"{where}: node {nid} does not match its content: the file was altered"
            )
        result = None if row.get("result") is None else _bytes(row, "result", where)
        try:
            rows.checked_call(step)
            if result is not None:
                rows.checked_value(result, "result", ordered=True)
        except rows.Damaged as problem:
            raise ExportFormatError(
                f"{where}: node {nid} is not what muscle-mem writes ({problem}): the file "
                "was altered"
            ) from None
        if parent in self.dropped or (
            self.key and not self._signed(row, where, task, parent, step, result)
        ):
            self.dropped.add(nid)
            self.imported.rejected += 1
            return
        owner = tree.nodes.get(parent)
        if owner is None:
            raise ExportFormatError(f"{where}: node {nid} comes before its parent {parent}")
        node = tree.insert(owner, step)
        node.terminal = _field(row, "terminal", bool, where)
        node.approved = node.terminal and row.get("approved") is True
        node.hits = _count(row, "hits", where)
        node.failures = _count(row, "failures", where)
        node.last_used = _time(row, "last_used", where)
        node.result = result
        self.owners[nid] = tree
        self.imported.nodes += 1

    def _signed(
        self,
        row: dict[str, Any],
        where: str,
        task: str,
        parent: str,
        step: Step,
        result: bytes | None,
    ) -> bool:
        """Whether the node line's signature, and its end's and result's if it is an
        end or has one, hold."""
        nid = row["node"]
        if not valid(_sig(row, where), sign_node(self.key, nid, parent, task, step)):
            return False
        if result is None and row.get("terminal") is not True:
            return True
        return valid(_sig(row, where, "result_sig"), sign_result(self.key, nid, task, result))

    def snapshot(self, row: dict[str, Any], where: str) -> None:
        nid = _field(row, "snapshot", str, where)
        which = _field(row, "which", str, where)
        if which not in rows.SLOTS:
            slots = ", ".join(sorted(rows.SLOTS))
            raise ExportFormatError(f"{where}: which must be one of {slots}, got {which!r}")
        data = _bytes(row, "data", where)
        try:
            rows.checked_value(data, "data")
        except rows.Damaged as problem:
            raise ExportFormatError(
                f"{where}: a snapshot of node {nid} is not what muscle-mem writes ({problem}): "
                "the file was altered"
            ) from None
        expected = sign_snapshot(self.key, nid, which, data)
        if nid in self.dropped or (self.key and not valid(_sig(row, where), expected)):
            self.imported.rejected += 1
            return
        tree = self.owners.get(nid)
        if tree is None:
            raise ExportFormatError(f"{where}: snapshot of node {nid}, which no earlier line holds")
        tree.nodes[nid].snapshots(which).load(data)
        self.imported.snapshots += 1


def field_value(value: Any, kind: Any, label: str) -> Any:
    """``value`` read from an export, if it is a ``kind`` a store can hold; else an
    :class:`ExportFormatError` that names it by ``label``. (Both export formats read their
    fields through it.)"""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = getattr(kind, "__name__", "a number")
        raise ExportFormatError(f"{label} must be {expected}, got {value!r:.60}")
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: JSON allows it, no store does
            raise ExportFormatError(f"{label} is not valid Unicode") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ExportFormatError(f"{label} must be a finite number, got {value}")
    return value


def tag_values(tags: list[Any], label: str) -> tuple[str, ...]:
    """An export's tags, if every one is text a store can hold."""
    return tuple(field_value(tag, str, f"{label}[{i}]") for i, tag in enumerate(tags))


def _field(row: dict[str, Any], name: str, kind: Any, where: str) -> Any:
    return field_value(row.get(name), kind, f"{where}: {name!r}")


def _count(row: dict[str, Any], name: str, where: str) -> int:
    value = _field(row, name, int, where)
    if not 0 <= value < 2**63:  # what a database's BIGINT holds
        raise ExportFormatError(f"{where}: {name!r} must be from 0 to 2**63 - 1, got {value}")
    return int(value)


def _time(row: dict[str, Any], name: str, where: str) -> float:
    value = _field(row, name, (int, float), where)
    if not 0 <= value < 1e11:  # epoch seconds, up to the year 5138
        raise ExportFormatError(f"{where}: {name!r} must be a time in epoch seconds, got {value}")
    return float(value)


def _bytes(row: dict[str, Any], name: str, where: str) -> bytes:
    try:
        return base64.b64decode(_field(row, name, str, where), validate=True)
    except binascii.Error:
        raise ExportFormatError(f"{where}: {name!r} is not base64") from None


def _sig(row: dict[str, Any], where: str, name: str = "sig") -> bytes | None:
    return None if row.get(name) is None else _bytes(row, name, where)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()
