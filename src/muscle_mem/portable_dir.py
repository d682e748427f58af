"""The cache as a folder of readable files, to review in git: one file per task key.

``muscle-mem export --dir muscle-mem-cache/`` writes, per task key, a JSON file in a
folder named after its tags (``signup/``; several tags joined by ``+`` in their sorted
order, ``billing+signup/``; none, ``untagged/``), named after the task's words and the
start of its key (``fill-the-signup-form-for-name.3f2a9c1b.json``), so that files never
move while the key's tags stay. Each file holds the task's key, words and tags, then
its paths, numbered as ``muscle-mem show`` numbers them, each with ``approved`` (the
one field a reviewer edits), its steps (tool, code fingerprint, the call as values:
see :mod:`.readable`, and the checks' snapshots, sorted) and the result its hits
return. A step shared by several paths is written in full in the first one; later ones
name it and say ``"shared": "path 1"``.

Stable for diffs: the same cache writes the same bytes (JSON, two-space indent, keys in
a fixed order, no time of the export), a file is rewritten only when its content
changes, and an export of every key removes the review files of keys that are gone.
Counts and last use change with every hit and would drown a diff: they are left out
unless asked for (``counts=True``, ``--counts``); an import without them starts the
steps' counts at 0 and their last use at the time of the import.

``import --dir`` reads it back with the safety of :mod:`.portable`: every step's id is
checked against its content (its tool, code and call as written hash to it, so an
edited call is refused), every value is checked as a store checks what it loads, with
a secret every step, result and snapshot carries its signature and those that fail are
left out with their whole path, and only whole paths come in. The ``approved`` fields
are applied as edited, through :meth:`~muscle_mem.store.Store.approve`: the importing
store signs them with its own secret, so a file can only carry approvals into a signed
store in the hands of whoever holds the secret (the file's flags are not signed: a
reviewer edits them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .codec import check, encode_tree
from .errors import DecodeError, EncodeError, ExportFormatError
from .models import Step, TaskInfo, node_id, root_id
from .portable import Imported, field_value, tag_values
from .readable import readable, tagged
from .store import rows
from .store.base import Store
from .store.signing import secret_key, sign_node, sign_result, sign_snapshot, valid
from .trie import Node, Tree

FORMAT = "muscle-mem review"
VERSION = 1
UNTAGGED = "untagged"
_SLUG_WORDS = 60  # characters of a task's words a file name keeps


@dataclass
class ImportedDir(Imported):
    """What a review folder holds: :class:`~.portable.Imported`, with the approval of
    each path's end as the files say it (task key -> end id -> approved)."""

    approvals: dict[str, dict[str, bool]] = field(default_factory=dict)
    files: int = 0


def file_name(info: TaskInfo) -> Path:
    """Where a task key's file goes in a review folder (see the module)."""
    folder = "+".join(_slug(tag) for tag in sorted(info.tags)) or UNTAGGED
    words = _slug(info.text)[:_SLUG_WORDS].strip("-") or "task"
    return Path(folder) / f"{words}.{info.task_key.rpartition(':')[2][:8]}.json"


def export_dir(
    store: Store,
    directory: str | Path,
    tasks: Sequence[TaskInfo] | None = None,
    *,
    secret: str | bytes | None = None,
    counts: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Write the store's task keys (or ``tasks``) into ``directory`` as review files;
    returns how many files were written or changed, and how many were removed (those
    of keys the store no longer holds, when every key is exported).

    With ``secret``, every step, result and snapshot is signed; ``counts`` adds each
    step's hits, failures and last use.
    """
    key = secret_key(secret)
    every = tasks is None
    if tasks is None:
        tasks = store.tasks()
    root = Path(directory)
    written: set[Path] = set()
    changed = 0
    for done, info in enumerate(tasks, 1):
        path = root / file_name(info)
        if path in written:  # two keys whose words, tags and first 8 hex digits agree
            path = path.with_name(f"{path.name[:-14]}.{info.task_key.rpartition(':')[2]}.json")
        text = json.dumps(document(store, info, key, counts), indent=2, ensure_ascii=False)
        written.add(path)
        changed += _write(path, text + "\n")
        if progress is not None:
            progress(done, len(tasks))
    removed = 0
    if every:
        for stale in _review_files(root):
            if stale not in written:
                stale.unlink()
                removed += 1
                if stale.parent != root and not any(stale.parent.iterdir()):
                    stale.parent.rmdir()
    return changed, removed


def document(store: Store, info: TaskInfo, key: bytes | None, counts: bool) -> dict[str, Any]:
    """One task key's review file, as JSON data."""
    task = info.task_key
    tree = store.tree(task)
    first: dict[str, int] = {}  # node id -> the path that writes it in full
    paths = []
    for number, end in enumerate(tree.ends(), 1):
        steps = []
        for node in tree.path_to(end):
            shared = first.setdefault(node.id, number)
            steps.append(_step(task, node, key, counts, None if shared == number else shared))
        entry: dict[str, Any] = {"path": number, "approved": end.approved, "steps": steps}
        if end.result is not None:
            entry["result"] = readable(check(end.result, ordered=True))
        if key is not None:
            entry["result_sig"] = _hex(sign_result(key, end.id, task, end.result))
        if len(end.ends):
            entry["params_recorded"] = _snapshots(end, "end", key)
        paths.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "text": info.text,
        "tags": list(info.tags),
        "signed": key is not None,
        "paths": paths,
    }


def _step(
    task: str, node: Node, key: bytes | None, counts: bool, shared: int | None
) -> dict[str, Any]:
    assert node.step is not None and node.parent is not None
    step: dict[str, Any] = {
        "id": node.id,
        "tool": node.step.tool,
        "code": node.step.code,
        "call": _call(node.step.call),
    }
    if key is not None:
        step["sig"] = _hex(sign_node(key, node.id, node.parent, task, node.step))
    if shared is not None:
        step["shared"] = f"path {shared}"
        return step
    for which in ("pre", "post"):
        if len(node.snapshots(which)):
            step[which] = _snapshots(node, which, key)
    if counts:
        step["hits"] = node.hits
        step["failures"] = node.failures
        step["last_used"] = datetime.fromtimestamp(node.last_used, timezone.utc).isoformat()
    return step


def _call(data: bytes) -> Any:
    """A step's call as ``{"args": [...], "kwargs": {...}}``, values readable."""
    tree = check(data, ordered=True)
    args, kwargs = tree["t"]
    shown = {"args": readable(args["t"]), "kwargs": readable(kwargs)}
    try:
        if _call_tree(shown, "call") == tree:
            return shown
    except ExportFormatError:
        pass
    return {"$tree": tree}


def _call_tree(call: Any, where: str) -> Any:
    if not isinstance(call, dict):
        raise ExportFormatError(f"{where}: expected {{'args': [...], 'kwargs': {{...}}}}")
    if set(call) == {"$tree"}:
        return call["$tree"]
    if set(call) != {"args", "kwargs"} or not isinstance(call["args"], list):
        raise ExportFormatError(f"{where}: expected {{'args': [...], 'kwargs': {{...}}}}")
    kwargs = tagged(call["kwargs"], f"{where}.kwargs")
    if not (isinstance(kwargs, dict) and "d" in kwargs):
        raise ExportFormatError(f"{where}.kwargs: expected an object of arguments by name")
    return {"t": [{"t": tagged(call["args"], f"{where}.args")}, kwargs]}


def _snapshots(node: Node, which: str, key: bytes | None) -> list[Any]:
    """A node's snapshots of one slot, sorted by their encoding: the order a hit changes
    (least recently matched first) would move lines in every diff."""
    shown = []
    for data in sorted(node.snapshots(which)):  # type: ignore[arg-type]
        value = readable(check(data))
        if key is None:
            shown.append(value)
        else:
            shown.append({"value": value, "sig": _hex(sign_snapshot(key, node.id, which, data))})
    return shown


def read_dir(directory: str | Path, *, secret: str | bytes | None = None) -> ImportedDir:
    """Read and check every review file under ``directory``. Raises
    :class:`ExportFormatError` naming the file and field of the first problem; nothing
    is read into any store until every file checks out."""
    root = Path(directory)
    if not root.is_dir():
        raise ExportFormatError(f"{root} is not a folder")
    files = sorted(_json_files(root))
    if not files:
        raise ExportFormatError(f"{root} holds no .json files: is it a `muscle-mem export --dir`?")
    reader = _DirReader(secret_key(secret))
    for path in files:
        name = path.relative_to(root).as_posix()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise ExportFormatError(f"{name}: cannot read it ({error})") from None
        except (ValueError, RecursionError) as error:
            raise ExportFormatError(f"{name}: not JSON ({error})") from None
        reader.file(data, name)
    return reader.imported


def apply_approvals(store: Store, imported: ImportedDir) -> int:
    """Mark each imported path's end approved or not, as its file says; returns how
    many changed. Ends left out of the import (a failed signature) are left alone."""
    changed = 0
    for task, ends in imported.approvals.items():
        tree = imported.trees[task][1]
        for approved in (True, False):
            chosen = [nid for nid, mark in ends.items() if mark is approved and nid in tree.nodes]
            if chosen:
                changed += store.approve(task, chosen, approved)
    return changed


class _DirReader:
    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.imported = ImportedDir(signed=key is not None)
        self.now = time.time()

    def file(self, data: Any, name: str) -> None:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ExportFormatError(
                f"{name}: not a muscle-mem review file (written by `muscle-mem export --dir`)"
            )
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
            raise ExportFormatError(
                f"{name}: review format {version!r} is newer than this muscle-mem reads "
                f"({VERSION}); upgrade muscle-mem"
            )
        task = _get(data, "task", str, name)
        tags = tag_values(_get(data, "tags", list, name), f"{name}: tags")
        if task in self.imported.trees:
            raise ExportFormatError(f"{name}: task {task} is in another file too")
        tree = Tree(task)
        self.imported.trees[task] = (tuple(sorted(set(tags))), tree)
        text = _get(data, "text", str, name)
        if text:
            self.imported.texts[task] = text
        self.imported.files += 1
        self.imported.signed = self.imported.signed or data.get("signed") is True
        approvals = self.imported.approvals.setdefault(task, {})
        for i, entry in enumerate(_get(data, "paths", list, name)):
            where = f"{name}: paths[{i}]"
            if not isinstance(entry, dict):
                raise ExportFormatError(f"{where}: expected an object")
            end = self.path(tree, entry, where)
            if end is not None:
                approvals[end] = _get(entry, "approved", bool, where)

    def path(self, tree: Tree, entry: dict[str, Any], where: str) -> str | None:
        """Check one path; add it to ``tree`` if every row of it holds. Returns its end."""
        task = tree.task_key
        steps = _get(entry, "steps", list, where)
        if not steps:
            raise ExportFormatError(f"{where}.steps: a path has at least one step")
        parent = root_id(task)
        made: list[tuple[str, Step, dict[str, Any], str]] = []
        ok = True
        for i, row in enumerate(steps):
            at = f"{where}.steps[{i}]"
            if not isinstance(row, dict):
                raise ExportFormatError(f"{at}: expected an object")
            step = Step(
                _get(row, "tool", str, at),
                _get(row, "code", str, at),
                _encoded(_call_tree(row.get("call"), f"{at}.call"), f"{at}.call", ordered=True),
            )
            nid = _get(row, "id", str, at)
            if node_id(parent, step) != nid:
                raise ExportFormatError(
                    f"{at}: step {nid} does not match its tool, code and call: the file was "
                    "altered (only `approved` is for editing)"
                )
            try:
                rows.checked_call(step)
            except rows.Damaged as problem:
                raise ExportFormatError(
                    f"{at}.call: not what muscle-mem writes ({problem})"
                ) from None
            if self.key and not valid(_sig(row, at), sign_node(self.key, nid, parent, task, step)):
                ok = False
            made.append((nid, step, row, at))
            parent = nid
        result = None
        if "result" in entry:
            result = _exact(entry["result"], f"{where}.result", ordered=True)
        if self.key and not valid(
            _sig(entry, where, "result_sig"), sign_result(self.key, parent, task, result)
        ):
            ok = False
        if not ok:
            self.imported.rejected += len(made)
            return None
        node = tree.root
        for nid, step, row, at in made:
            new = nid not in tree.nodes
            node = tree.insert(node, step, nid)
            self.imported.nodes += new
            self._details(node, row, at)
        node.terminal = True
        node.result = result
        self._snapshots(node, "end", entry.get("params_recorded", []), f"{where}.params_recorded")
        return node.id

    def _details(self, node: Node, row: dict[str, Any], at: str) -> None:
        """A step's snapshots and counts (a shared step's come with its first path)."""
        for which in ("pre", "post"):
            self._snapshots(node, which, row.get(which, []), f"{at}.{which}")
        if "hits" in row:
            node.hits = max(node.hits, _count(row, "hits", at))
            node.failures = max(node.failures, _count(row, "failures", at))
        used = row.get("last_used")
        if used is None:
            node.last_used = max(node.last_used, self.now)
        else:
            try:
                moment = datetime.fromisoformat(_get(row, "last_used", str, at)).timestamp()
            except ValueError:
                raise ExportFormatError(f"{at}.last_used: not an ISO 8601 time: {used!r}") from None
            node.last_used = max(node.last_used, moment)

    def _snapshots(self, node: Node, which: str, values: Any, where: str) -> None:
        if not isinstance(values, list):
            raise ExportFormatError(f"{where}: expected a list of snapshots")
        for i, value in enumerate(values):
            at = f"{where}[{i}]"
            sig = None
            if self.key is not None:
                if not (isinstance(value, dict) and set(value) == {"value", "sig"}):
                    self.imported.rejected += 1  # unsigned: left out, as a bad signature
                    continue
                sig, value = _sig(value, at), value["value"]
            data = _exact(value, at)
            try:
                rows.checked_value(data, "data")
            except rows.Damaged as problem:
                raise ExportFormatError(f"{at}: not what muscle-mem writes ({problem})") from None
            if self.key and not valid(sig, sign_snapshot(self.key, node.id, which, data)):
                self.imported.rejected += 1
                continue
            snapshots = node.snapshots(which)  # type: ignore[arg-type]
            if data not in snapshots:
                snapshots.load(data)
                self.imported.snapshots += 1


def _exact(value: Any, where: str, *, ordered: bool = False) -> bytes:
    """The bytes a readable value stands for (see :mod:`.readable`)."""
    return _encoded(tagged(value, where), where, ordered=ordered)


def _encoded(tree: Any, where: str, *, ordered: bool = False) -> bytes:
    """The bytes of the codec's tree ``tree``, checked as a store checks what it loads."""
    try:
        data = encode_tree(tree, ordered=ordered)
        check(data, ordered=ordered)
    except (EncodeError, DecodeError) as error:
        raise ExportFormatError(f"{where}: {error}") from None
    return data


def _get(row: dict[str, Any], name: str, kind: type, where: str) -> Any:
    return field_value(row.get(name), kind, f"{where}.{name}:")


def _count(row: dict[str, Any], name: str, where: str) -> int:
    value = _get(row, name, int, where)
    if not 0 <= value < 2**63:
        raise ExportFormatError(f"{where}.{name}: must be from 0 to 2**63 - 1, got {value}")
    return int(value)


def _sig(row: dict[str, Any], where: str, name: str = "sig") -> bytes | None:
    value = row.get(name)
    if value is None:
        return None
    try:
        return bytes.fromhex(_get(row, name, str, where))
    except ValueError:
        raise ExportFormatError(f"{where}.{name}: not hex") from None


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.casefold()).strip("-.")


def _write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it holds it already; whether it wrote. Through
    a temporary file, so a reader never sees half a file."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return True


def _json_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.json") if p.is_file()]


def _review_files(root: Path) -> list[Path]:
    """The review files under ``root``: those a stale key leaves behind are removed,
    and nothing else is ever touched."""
    found = []
    for path in _json_files(root):
        try:
            with path.open(encoding="utf-8") as file:
                head = file.read(200)
        except (OSError, UnicodeDecodeError):
            continue
        if re.match(r'\{\s*"format": "muscle-mem review"', head):
            found.append(path)
    return found


__all__ = ["FORMAT", "ImportedDir", "apply_approvals", "export_dir", "file_name", "read_dir"]
