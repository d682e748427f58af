"""What the SQLite and PostgreSQL stores share: one run's writes, and the process's copy
of each task key's tree (the tables are in :mod:`.schema`).

A process reads a task key's tree once and keeps it; each run asks only for the key's
*generation*, a counter bumped by every commit that changes what replay can see (a new
node, a new or replaced snapshot). When another process has bumped it, the tree is read
again. Hits with equality checks change counts and LRU times only, so a fleet replaying
a stable cache never re-reads it: a hit's commit is its bookkeeping alone (counts, LRU
times, the run log line), in one transaction that leaves the generation as it is, and
which PostgreSQL writes behind, in batches (see :mod:`.postgres`).

Every write of the tree is an idempotent upsert keyed by content (a node's id hashes
its path), so two processes recording the same path write the same rows. A run's
counts and log line are not idempotent: the log line carries a uid, written first, so
a write retried after its acknowledgement was lost finds it and writes nothing (see
:meth:`SQLStore._log`). Each commit then upserts its task key's row, which serialises
writers of one task key and so rules out deadlocks between them (the log line locks
nothing another writer waits for).

What is read back is checked before it is used (:mod:`.rows`): a node's content
against its id, a recorded end's result and flag against its end digest, a snapshot's
data against its digest, every column's type. A snapshot's form is checked the first
time it is decoded or listed (see :class:`_StoredSnapshots`).

A store remembers which secret signs its rows (``mm_meta``'s ``signed_by``, a MAC of a
constant: see :func:`.signing.signer`), set by the first write that records something.
A worker with another secret, or none, refuses to write paths there: its rows would
replace the fleet's signed ones (an upsert rewrites a node's signature), and every
other worker would then reject them. Removing every tree forgets the signer.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from hashlib import blake2b
from typing import Any, TypeVar

from ..checks import Check
from ..errors import ConfigurationError, DecodeError, IntegrityWarning, StoreError
from ..models import (
    SLOTS,
    WHICH,
    Changes,
    Matched,
    RunRecord,
    Slot,
    Snapshot,
    Status,
    Step,
    TaskInfo,
    root_id,
)
from ..trie import DEFAULT_SNAPSHOT_CAP, Node, SnapshotSet, Tree, descendants
from . import rows, schema
from .base import Cursor, SQLDatabase, Store, to_approve
from .signing import (
    secret_key,
    sign_approval,
    sign_node,
    sign_result,
    sign_snapshot,
    signer,
    valid,
)

TREES_KEPT = 1_000  # task keys' trees a process keeps in memory
_SIGNED_BY = "signed_by"  # the mm_meta key naming the secret the store's rows are signed with

_RUN_COLUMNS = (
    "task_key, tags, params, status, replayed, recorded, diverged_at, reason, "
    "started_at, duration_s, tokens, cost, path, about"
)

_RUN_MARKS = ", ".join("?" * len(_RUN_COLUMNS.split(",")))

T = TypeVar("T")


class SQLStore(Store, SQLDatabase):
    """A store in an SQL database. Subclasses connect and run transactions.

    Its public :meth:`read`, :meth:`write` and :attr:`dialect` (the
    :class:`~.base.SQLDatabase` seam) let other code, the memory bank, keep tables in
    the same database; subclasses implement them as ``_read`` and ``_write``.
    """

    #: SQL that orders rows "all the rest" after an OFFSET.
    no_limit = "LIMIT -1"

    def __init__(self, url: str, snapshot_cap: int, secret: str | bytes | None) -> None:
        if snapshot_cap < 1:
            raise ConfigurationError(f"snapshot_cap must be at least 1, got {snapshot_cap}")
        self.url = url
        self.snapshot_cap = snapshot_cap
        self._key = secret_key(secret)
        # The trees this process has read, least recently used first: a worker that
        # meets millions of task keys keeps the ones it uses, not all it ever saw.
        self._trees: OrderedDict[str, tuple[int, Tree]] = OrderedDict()
        self._lock = threading.Lock()

    # -- what subclasses provide ----------------------------------------------------

    #: The SQL the database speaks: "sqlite" or "postgresql".
    dialect: str

    @abstractmethod
    def _read(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` with a cursor outside any write transaction."""

    @abstractmethod
    def _write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one write transaction: all of it is committed or none."""

    # -- the seam other code keeps its tables through ---------------------------------

    def read(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` with a cursor outside any write transaction; return its result."""
        return self._read(work)

    def write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one write transaction: all of it is committed or none."""
        return self._write(work)

    # -- the schema -------------------------------------------------------------------

    def _open_schema(self) -> None:
        """Create the tables, migrate an older schema, or refuse a newer one.

        A store already at this version is only read: opening it for a look (the
        command line's ``ls``) neither waits for a writer nor needs write access.
        """
        try:
            if self._read(schema.version) == schema.SCHEMA_VERSION:
                return
        except StoreError:
            pass  # no schema yet, or no database at all: the write below says which
        self._write(self._upgrade)

    def _upgrade(self, cur: Cursor) -> None:
        found = schema.upgrade(
            cur,
            self.dialect,
            "schema_version",
            schema.SCHEMA_VERSION,
            schema.statements(schema.SCHEMA, self.dialect),
            schema.migrations(self.dialect),
            f"the store {self.url}",
        )
        if 0 < found < schema.END_DIGESTS:
            _digest_ends(cur)

    # -- the protocol -------------------------------------------------------------------

    def use_secret(self, secret: str | bytes | None) -> None:
        key = secret_key(secret)
        if key != self._key:
            with self._lock:
                self._key = key
                self._trees.clear()  # what was verified with another key is read again

    def tree(self, task_key: str) -> Tree:
        generation = self._read(lambda cur: _generation(cur, task_key))
        cached = self._trees.get(task_key)
        if cached is not None and cached[0] == generation:
            with self._lock:
                if task_key in self._trees:
                    self._trees.move_to_end(task_key)
            return cached[1]
        tree = self._read(lambda cur: self._load(cur, task_key))
        with self._lock:
            self._trees[task_key] = (generation, tree)
            self._trees.move_to_end(task_key)
            while len(self._trees) > TREES_KEPT:
                self._trees.popitem(last=False)
        return tree

    def commit(self, changes: Changes, run: RunRecord) -> None:
        now = time.time()
        structural = changes.structural
        before = self._trees.get(changes.task_key)
        tree = before[1] if before else self.tree(changes.task_key)
        if not structural:
            # Counts, LRU times and the log line: nothing another process's replay
            # could see, so the generation stays, and with it our copy's standing.
            self._commit_uses(changes, run, tree, now)
            tree.apply(changes, now)
            return
        self._settle()
        uid = new_uid()  # one per run, whatever retries its write
        generation, kept = self._write(
            lambda cur: self._commit(cur, changes, run, uid, tree, now, structural)
        )
        tree.apply(changes if kept else changes.without_path(), now)
        with self._lock:
            cached = self._trees.get(changes.task_key)
            # Our copy is current only if no other writer committed since we read it.
            if cached is not None and cached[1] is tree and cached[0] == generation - 1:
                self._trees[changes.task_key] = (generation, tree)

    def runs(self, *, since: float | None = None, about: str | None = None) -> list[RunRecord]:
        where: list[str] = []
        values: list[Any] = []
        if since is not None:
            where.append("started_at >= ?")
            values.append(since)
        if about is not None:
            where.append("about = ?")
            values.append(about)
        sql = f"SELECT id, {_RUN_COLUMNS} FROM mm_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)

        def work(cur: Cursor) -> list[RunRecord]:
            cur.execute(sql + " ORDER BY id", values)
            return cur.fetchall()

        records = []
        damage = rows.Damage(f"the run log of {self.url}")
        for row in self._read(work):
            try:
                records.append(_run_record(row[1:]))
            except rows.Damaged as problem:
                damage.add("mm_runs", rows.name(row[0]), problem)
        damage.warn()
        return records

    def snapshot_times(self, task_key: str) -> dict[tuple[str, str, bytes], float]:
        def work(cur: Cursor) -> list[Any]:
            cur.execute(
                "SELECT node, which, data, used FROM mm_snapshots WHERE task_key = ?",
                (task_key,),
            )
            return cur.fetchall()

        # Only shown: a damaged row is left out here, and named when the tree is read.
        return {
            (node, which, bytes(data)): float(used)
            for node, which, data, used in self._read(work)
            if type(node) is str
            and type(which) is str
            and isinstance(data, (bytes, memoryview))
            and type(used) in (int, float)
        }

    def tasks(self) -> list[TaskInfo]:
        def work(cur: Cursor) -> list[Any]:
            cur.execute(
                "SELECT t.task_key, t.tags, COUNT(n.id), SUM(n.terminal), t.created_at, "
                "t.last_used, t.text, SUM(n.terminal * n.approved) FROM mm_tasks t "
                "JOIN mm_nodes n ON n.task_key = t.task_key "
                "GROUP BY t.task_key, t.tags, t.created_at, t.last_used, t.text "
                "ORDER BY t.last_used DESC, t.task_key"
            )
            return cur.fetchall()

        infos = []
        damage = rows.Damage(f"the task list of {self.url}")
        for key, tags, nodes, ends, created, used, text, approved in self._read(work):
            # A task's row only describes its tree (which is read on its own), so a
            # damaged column is shown empty rather than hiding the task from `ls`,
            # `export` and `rm`, which work on its nodes.
            try:
                tags = rows.strings(tags, "tags")
            except rows.Damaged as problem:
                damage.add("mm_tasks", rows.name(key), problem)
                tags = ()
            times = []
            for value, column in ((created, "created_at"), (used, "last_used")):
                try:
                    times.append(rows.number(value, column))
                except rows.Damaged as problem:
                    damage.add("mm_tasks", rows.name(key), problem)
                    times.append(0.0)
            try:
                text = rows.optional_text(text, "text") or ""
            except rows.Damaged as problem:
                damage.add("mm_tasks", rows.name(key), problem)
                text = ""
            created, used = times
            paths, approved = int(ends or 0), int(approved or 0)
            infos.append(TaskInfo(str(key), tags, int(nodes), paths, created, used, text, approved))
        damage.warn()
        return infos

    def remove(self, task_key: str, nodes: Collection[str] | None = None) -> int:
        def work(cur: Cursor) -> int:
            # The task's row stays, its generation bumped: a process holding the tree
            # sees the change, where a deleted row could come back at a generation it
            # has already seen.
            cur.execute(
                "UPDATE mm_tasks SET generation = generation + 1 WHERE task_key = ?", (task_key,)
            )
            cur.execute("SELECT id, parent FROM mm_nodes WHERE task_key = ?", (task_key,))
            parents = dict(cur.fetchall())
            # With what was recorded below them since the caller chose them: a branch
            # added meanwhile must not stay behind, hanging from nothing.
            children: dict[str, list[str]] = {}
            for nid, parent in parents.items():
                children.setdefault(parent, []).append(nid)
            chosen = parents if nodes is None else [nid for nid in nodes if nid in parents]
            # (By text: an id SQLite kept as bytes, not being UTF-8, goes too.)
            doomed = sorted(descendants(chosen, lambda nid: children.get(nid, ())), key=str)
            for start in range(0, len(doomed), 500):  # SQLite caps a statement's parameters
                chunk = doomed[start : start + 500]
                # As text: an id that is not UTF-8, read as its bytes, would be bound
                # as a blob, which never equals SQLite's text.
                marks = ", ".join(["CAST(? AS TEXT)"] * len(chunk))
                cur.execute(f"DELETE FROM mm_snapshots WHERE node IN ({marks})", chunk)
                cur.execute(f"DELETE FROM mm_nodes WHERE id IN ({marks})", chunk)
            cur.execute("SELECT 1 FROM mm_nodes LIMIT 1")
            if cur.fetchone() is None:  # nothing signed is left: any secret may sign anew
                cur.execute("DELETE FROM mm_meta WHERE key = ?", (_SIGNED_BY,))
            return len(doomed)

        removed = self._write(work)
        with self._lock:
            self._trees.pop(task_key, None)
        return removed

    def merge(self, tree: Tree, tags: tuple[str, ...], text: str | None = None) -> tuple[int, int]:
        key = tree.task_key
        # Rows are written with the ids the tree gives (a tree built by insert() has them
        # right): one that does not hash its content would be left out by every reader.
        for node in tree:
            if node.step is not None:
                assert node.parent is not None
                try:
                    rows.identified(node.id, node.parent, node.step)
                except rows.Damaged:
                    raise ConfigurationError(
                        f"node {node.id} of the tree of {key} does not match its content; "
                        "build the tree with Tree.insert, which names each node"
                    ) from None

        def count(cur: Cursor) -> tuple[int, int, int, int]:
            cur.execute(
                "SELECT COUNT(*), COALESCE(SUM(terminal), 0), COALESCE(SUM(approved), 0) "
                "FROM mm_nodes WHERE task_key = ?",
                (key,),
            )
            nodes, ends, approved = cur.fetchone()
            cur.execute("SELECT COUNT(*) FROM mm_snapshots WHERE task_key = ?", (key,))
            return int(nodes), int(cur.fetchone()[0]), int(ends), int(approved)

        def work(cur: Cursor) -> tuple[int, int]:
            used = max((node.last_used for node in tree), default=time.time())
            # Takes the task's row first, as a commit does (see the module docstring).
            # The store's own words for the task stay; a file's fill in where it has none.
            cur.execute(
                "INSERT INTO mm_tasks (task_key, tags, generation, created_at, last_used, text) "
                "VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (task_key) DO UPDATE SET "
                "generation = mm_tasks.generation, text = COALESCE(mm_tasks.text, excluded.text)",
                (key, json.dumps(list(tags)), used, used, text),
            )
            before = count(cur)
            # New rows are made in the tree's order (a node's children oldest first),
            # which is the order reads give them back in: `show` numbers paths the same
            # in the store a tree came from and in the one it was imported into.
            made = time.time()
            for i, node in enumerate(tree):
                if node.step is not None:
                    self._merge_node(cur, key, node, made + i * 1e-6)
            after = count(cur)
            if after != before:  # replay can see something new: every process re-reads
                # Rows already here keep their signatures; new ones are signed with this
                # store's secret, which must be the one its rows are signed with.
                self._check_signer(cur)
                cur.execute(
                    "UPDATE mm_tasks SET generation = generation + 1 WHERE task_key = ?", (key,)
                )
            return after[0] - before[0], after[1] - before[1]

        added = self._write(work)
        with self._lock:
            self._trees.pop(key, None)
        return added

    def approve(
        self, task_key: str, ends: Collection[str] | None = None, approved: bool = True
    ) -> int:
        def work(cur: Cursor) -> int:
            # The task's row first, as every writer takes it (see the module docstring).
            cur.execute(
                "UPDATE mm_tasks SET generation = generation + 1 WHERE task_key = ?",
                (task_key,),
            )
            cur.execute(
                "SELECT id, approved, approved_sig FROM mm_nodes "
                "WHERE task_key = ? AND terminal = 1",
                (task_key,),
            )
            recorded = {
                str(nid): bool(mark) and self._approval_holds(str(nid), task_key, sig)
                for nid, mark, sig in cur.fetchall()
            }
            changed = to_approve(task_key, recorded, ends, approved)
            if changed and approved:  # it signs: with the secret the store's rows carry
                self._check_signer(cur)
            for nid in changed:
                sig = self._sign_approval(nid, task_key) if approved else None
                cur.execute(
                    "UPDATE mm_nodes SET approved = ?, approved_sig = ? WHERE id = ?",
                    (int(approved), sig, nid),
                )
            return len(changed)

        changed = self._write(work)
        with self._lock:
            self._trees.pop(task_key, None)
        return changed

    def _merge_node(self, cur: Cursor, key: str, node: Node, created: float) -> None:
        assert node.step is not None and node.parent is not None
        # A node already here keeps its row and signature: an import, maybe without the
        # secret, must not unsign what the store's writers signed.
        cur.execute(
            "INSERT INTO mm_nodes (id, task_key, parent, tool, code, call, terminal, "
            "hits, failures, created_at, last_used, sig, result, result_sig, approved, "
            "approved_sig, end_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET "
            "terminal = CASE WHEN excluded.terminal > mm_nodes.terminal "
            "THEN excluded.terminal ELSE mm_nodes.terminal END, "
            # Approved in either stays approved; an approval here keeps its signature.
            "approved_sig = CASE WHEN mm_nodes.approved = 0 "
            "THEN excluded.approved_sig ELSE mm_nodes.approved_sig END, "
            "approved = CASE WHEN excluded.approved > mm_nodes.approved "
            "THEN excluded.approved ELSE mm_nodes.approved END, "
            # A result kept here stays, with its signature and digest; one is taken only
            # where none is (an end without one, or a step that becomes an end).
            "result_sig = CASE WHEN mm_nodes.result IS NULL AND excluded.terminal = 1 "
            "THEN excluded.result_sig ELSE mm_nodes.result_sig END, "
            "end_digest = CASE WHEN mm_nodes.result IS NULL AND excluded.terminal = 1 "
            "THEN excluded.end_digest ELSE mm_nodes.end_digest END, "
            "result = COALESCE(mm_nodes.result, excluded.result), "
            "hits = CASE WHEN excluded.hits > mm_nodes.hits "
            "THEN excluded.hits ELSE mm_nodes.hits END, "
            "failures = CASE WHEN excluded.failures > mm_nodes.failures "
            "THEN excluded.failures ELSE mm_nodes.failures END, "
            "last_used = CASE WHEN excluded.last_used > mm_nodes.last_used "
            "THEN excluded.last_used ELSE mm_nodes.last_used END",
            (
                node.id,
                key,
                node.parent,
                node.step.tool,
                node.step.code,
                node.step.call,
                int(node.terminal),
                node.hits,
                node.failures,
                created,
                node.last_used,
                self._sign_node(node.id, node.parent, key, node.step),
                node.result,
                self._sign_result(node.id, key, node.result) if node.terminal else None,
                int(node.approved),
                self._sign_approval(node.id, key) if node.approved else None,
                rows.end_digest(node.id, node.result) if node.terminal else None,
            ),
        )
        for which in SLOTS:
            snapshots = node.snapshots(which).keys()
            # Imported environments rank below those this store has matched, in their
            # order: under the cap, eviction drops them first.
            for i, data in enumerate(snapshots):
                cur.execute(
                    "INSERT INTO mm_snapshots (node, which, digest, task_key, data, used, sig) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, which, digest) DO NOTHING",
                    (
                        node.id,
                        which,
                        _digest(data),
                        key,
                        data,
                        i * 1e-6,
                        self._sign_snapshot(node.id, which, data),
                    ),
                )
            if snapshots:
                self._evict(cur, node.id, which)

    # -- writing ------------------------------------------------------------------------

    def _commit(
        self,
        cur: Cursor,
        changes: Changes,
        run: RunRecord,
        uid: bytes,
        tree: Tree,
        now: float,
        structural: bool,
    ) -> tuple[int, bool]:
        """Write one run's changes (``structural``: ``changes.structural``, which the
        caller has read already), its log line under ``uid``; returns the task's new
        generation, and whether the recorded path (if any) was kept: not when its graft
        node has been removed."""
        key = changes.task_key
        if not self._log(cur, run, uid):  # committed already: this is a retry
            kept = changes.graft_at is not None and _present(cur, key, changes.graft_at)
            return _generation(cur, key), kept
        cur.execute(
            "INSERT INTO mm_tasks (task_key, tags, generation, created_at, last_used, text) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_key) DO UPDATE SET "
            "generation = mm_tasks.generation + ?, last_used = excluded.last_used, "
            "text = COALESCE(excluded.text, mm_tasks.text) RETURNING generation",
            (
                key,
                json.dumps(list(run.tags)),
                int(structural),
                now,
                now,
                changes.text,
                int(structural),
            ),
        )
        generation = int(cur.fetchone()[0])
        if structural:  # it writes signed rows (nodes, snapshots)
            self._check_signer(cur)
        touched: set[tuple[str, Slot]] = set()
        for m in changes.matched:
            if m.replaces:
                cur.execute(
                    "DELETE FROM mm_snapshots WHERE node = ? AND which = ? AND digest = ?",
                    (m.node, m.which, _digest(m.key)),
                )
                self._put_snapshot(cur, key, m.node, m.which, m.fresh.key, now)
        self._count_uses(cur, changes, tree, now)
        # Removed (rm, prune) while this run replayed, the graft node leaves what the run
        # recorded hanging from nothing: it is dropped rather than stored unreachable.
        kept = changes.graft_at is not None and _present(cur, key, changes.graft_at)
        if kept:
            for learned in changes.learned:
                self._put_snapshot(cur, key, learned.node, learned.which, learned.snapshot.key, now)
                touched.add((learned.node, learned.which))
            for step in changes.path:
                call = step.call
                self._put_node(cur, key, step.id, step.parent, call.step, now)
                for which, taken in zip(WHICH, (call.pre, call.post), strict=True):
                    if taken is not None:
                        self._put_snapshot(cur, key, step.id, which, taken.key, now)
                        touched.add((step.id, which))
            # A trajectory ends here, even one the agent ended without another call; the
            # latest recording's result replaces any earlier one (see Changes.result).
            end = changes.end
            assert end is not None
            cur.execute(
                "UPDATE mm_nodes SET terminal = 1, result = ?, result_sig = ?, end_digest = ? "
                "WHERE id = ?",
                (
                    changes.result,
                    self._sign_result(end, key, changes.result),
                    rows.end_digest(end, changes.result),
                    end,
                ),
            )
            if changes.unused is not None:
                self._put_snapshot(cur, key, end, "end", changes.unused, now)
                touched.add((end, "end"))
        for nid, slot in touched:
            node = tree.nodes.get(nid)
            held = len(node.snapshots(slot)) if node is not None else 0
            if held + 1 >= self.snapshot_cap:  # only then can the set be over its cap
                self._evict(cur, nid, slot)
        return generation, kept

    def _commit_uses(self, changes: Changes, run: RunRecord, tree: Tree, now: float) -> None:
        """Commit a run's changes that are not structural (a hit's counts, LRU times and
        log line) in one transaction; ``tree`` is the copy the run replayed.

        The generation is left alone: other processes' copies stay current. A store for
        which every statement is a round trip (PostgreSQL) writes it behind instead.
        """

        uid = new_uid()

        def work(cur: Cursor) -> None:
            if not self._log(cur, run, uid):
                return  # committed already: this is a retry
            # The task's row, as every writer takes it (see the module docstring).
            cur.execute(
                "INSERT INTO mm_tasks (task_key, tags, generation, created_at, last_used) "
                "VALUES (?, ?, 0, ?, ?) ON CONFLICT (task_key) DO UPDATE SET "
                "last_used = excluded.last_used",
                (changes.task_key, json.dumps(list(run.tags)), now, now),
            )
            self._count_uses(cur, changes, tree, now)

        self._write(work)

    def _log(self, cur: Cursor, run: RunRecord, uid: bytes) -> bool:
        """Log ``run`` under ``uid``, first thing in its write; False if a line with that
        uid is there already: the write was committed before, its acknowledgement lost,
        and is being retried. First, so that a retry writes nothing else either, and a
        retry that meets the first attempt still uncommitted (the server had not yet
        seen the connection go) waits for it to end, then knows."""
        cur.execute(
            f"INSERT INTO mm_runs ({_RUN_COLUMNS}, uid) VALUES ({_RUN_MARKS}, ?) "
            "ON CONFLICT (uid) DO NOTHING RETURNING id",
            (*_run_row(run), uid),
        )
        return cur.fetchone() is not None

    def _settle(self) -> None:
        """Write what :meth:`_commit_uses` left to write later; called before a
        structural commit, so a store that writes behind keeps each process's runs in
        order. This one writes nothing later."""

    def _count_uses(self, cur: Cursor, changes: Changes, tree: Tree, now: float) -> None:
        """Move matched snapshots up their LRU order and count hits and failures."""
        # A hit is the hot path: one statement for all its snapshots, one for its nodes.
        used = [value for key in _moved(changes, tree) for value in key]
        if used:
            # ORed keys, not a row-value IN: SQLite scans the table for the latter.
            rows = " OR ".join(["(node = ? AND which = ? AND digest = ?)"] * (len(used) // 3))
            cur.execute(f"UPDATE mm_snapshots SET used = ? WHERE {rows}", (now, *used))
        if changes.executed:
            marks = ", ".join("?" * len(changes.executed))
            cur.execute(
                f"UPDATE mm_nodes SET hits = hits + 1, last_used = ? WHERE id IN ({marks})",
                (now, *changes.executed),
            )
        if changes.failed:
            cur.executemany(
                "UPDATE mm_nodes SET failures = failures + 1 WHERE id = ?",
                [(nid,) for nid in changes.failed],
            )

    def _put_node(
        self, cur: Cursor, task_key: str, nid: str, parent: str, step: Step, now: float
    ) -> None:
        # On conflict the content is the same by construction (the id hashes it; the call's
        # dict order aside, which the latest recording sets), but a row that failed
        # verification is rewritten with a good signature.
        cur.execute(
            "INSERT INTO mm_nodes (id, task_key, parent, tool, code, call, created_at, "
            "last_used, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "task_key = excluded.task_key, parent = excluded.parent, tool = excluded.tool, "
            "code = excluded.code, call = excluded.call, last_used = excluded.last_used, "
            "sig = excluded.sig",
            (
                nid,
                task_key,
                parent,
                step.tool,
                step.code,
                step.call,
                now,
                now,
                self._sign_node(nid, parent, task_key, step),
            ),
        )

    def _put_snapshot(
        self, cur: Cursor, task_key: str, nid: str, which: str, data: bytes, now: float
    ) -> None:
        cur.execute(
            "INSERT INTO mm_snapshots (node, which, digest, task_key, data, used, sig) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, which, digest) DO UPDATE SET "
            "data = excluded.data, used = excluded.used, sig = excluded.sig",
            (nid, which, _digest(data), task_key, data, now, self._sign_snapshot(nid, which, data)),
        )

    def _evict(self, cur: Cursor, nid: str, which: str) -> None:
        cur.execute(
            "DELETE FROM mm_snapshots WHERE node = ? AND which = ? AND digest IN ("
            "SELECT digest FROM mm_snapshots WHERE node = ? AND which = ? "
            f"ORDER BY used DESC {self.no_limit} OFFSET ?)",
            (nid, which, nid, which, self.snapshot_cap),
        )

    # -- reading --------------------------------------------------------------------------

    def _load(self, cur: Cursor, task_key: str) -> Tree:
        """The task key's tree from its rows, each checked (see :mod:`.rows`): a row that
        fails its signature or is damaged is left out, and with it what hangs below it."""
        tree = Tree(task_key, self.snapshot_cap)
        cur.execute(
            "SELECT id, parent, tool, code, call, terminal, hits, failures, last_used, sig, "
            "result, result_sig, approved, approved_sig, end_digest FROM mm_nodes "
            "WHERE task_key = ? "
            "ORDER BY created_at, id",
            (task_key,),
        )
        node_rows = cur.fetchall()
        cur.execute(
            "SELECT node, which, digest, data, sig FROM mm_snapshots WHERE task_key = ? "
            "ORDER BY used, digest",
            (task_key,),
        )
        snapshot_rows = cur.fetchall()
        # The copy this process read before (with what its own runs added) was checked
        # then: only what is new is decoded again, so a worker re-reading a tree another
        # one changed pays for the change, not for the whole tree.
        cached = self._trees.get(task_key)
        known = cached[1].nodes if cached is not None else {}
        where = f"task {task_key} of {self.url}"
        damage = rows.Damage(where)
        rejected = 0
        loaded: dict[str, Node] = {}
        for row in node_rows:
            try:
                node, forged = self._node(row, task_key, known, where)
            except rows.Damaged as problem:
                damage.add("mm_nodes", rows.name(row[0]), problem)
                continue
            rejected += forged
            if node is not None:
                loaded[node.id] = node
        # Link children to parents reachable from the root, oldest first; a node whose
        # parent was left out is unreachable, and so never replayed.
        for child in loaded.values():
            assert child.parent is not None
            parent = tree.root if child.parent == tree.root.id else loaded.get(child.parent)
            if parent is not None:
                parent.children = (*parent.children, child)
        stack = [tree.root]
        while stack:
            for child in stack.pop().children:
                tree.nodes[child.id] = child
                stack.append(child)
        unsigned = self._key is None
        for row in snapshot_rows:
            nid, which, digest, data, sig = row
            owner = tree.nodes.get(nid) if type(nid) is str else None
            if owner is None or owner.step is None:
                continue  # of a node left out (unreachable), or of the root (it has none)
            # Rows come by the thousand: the usual one is taken in a glance (what
            # _snapshot checks, inline), and the checks that name what is wrong run only
            # when something is.
            if not (
                unsigned
                and type(data) is bytes
                and type(digest) is bytes
                and which in rows.SLOTS
                and (sig is None or type(sig) is bytes)
            ):
                try:
                    if not self._snapshot(row):
                        rejected += 1
                        continue
                except rows.Damaged as problem:
                    damage.add("mm_snapshots", f"({nid}, {rows.name(which)})", problem)
                    continue
                data, digest = bytes(data), bytes(digest)
            owner.snapshots(which).stored(data, digest)  # type: ignore[attr-defined]
        if rejected:
            warnings.warn(
                f"muscle-mem: {rejected} row(s) of task {task_key} in {self.url} failed "
                "signature verification and are ignored; they are replaced when recorded again",
                IntegrityWarning,
                stacklevel=3,
            )
        damage.warn(stacklevel=3)
        return tree

    def _node(
        self, row: Sequence[Any], task_key: str, known: dict[str, Node], where: str
    ) -> tuple[Node | None, bool]:
        """The node a ``mm_nodes`` row holds (``where``: the read's, for warnings), None
        if it fails its signature, and whether a signature failed (the node's, or its
        end's: then the node is kept as a step). Raises :class:`.rows.Damaged` for a row
        muscle-mem could not have written."""
        nid = rows.text(row[0], "id")
        parent = rows.text(row[1], "parent")
        step = rows.step(row[2], row[3], row[4])
        terminal = rows.count(row[5], "terminal")
        if terminal > 1:
            raise rows.Damaged(f"terminal is {terminal}, not 0 or 1")
        hits, failures = rows.count(row[6], "hits"), rows.count(row[7], "failures")
        last_used = rows.number(row[8], "last_used")
        sig = rows.optional_blob(row[9], "sig")
        result = rows.optional_blob(row[10], "result")
        result_sig = rows.optional_blob(row[11], "result_sig")
        approved = rows.count(row[12], "approved")
        if approved > 1:
            raise rows.Damaged(f"approved is {approved}, not 0 or 1")
        approved_sig = rows.optional_blob(row[13], "approved_sig")
        forged_end = False
        if self._key:
            if not valid(sig, self._sign_node(nid, parent, task_key, step)):
                return None, True
            if (terminal or result is not None) and not valid(
                result_sig, self._sign_result(nid, task_key, result)
            ):
                # An end or result the secret didn't sign, on a step it did: the step
                # stays (paths through it replay) and the end is left out, so a hit never
                # stops where nobody with the secret ended a run, nor returns what it
                # didn't sign. A run that ends here again signs it.
                forged_end, terminal, result = True, 0, None
        rows.identified(nid, parent, step)
        before = known.get(nid)
        if before is None or before.step != step:
            rows.checked_call(step)
        if result is not None and (before is None or before.result != result):
            rows.checked_value(result, "result", ordered=True)
        if terminal:
            rows.checked_end(nid, result, row[14])
        cap = self.snapshot_cap
        node = Node(
            nid,
            parent,
            step,
            _StoredSnapshots(cap, where, nid, "pre"),
            _StoredSnapshots(cap, where, nid, "post"),
            _StoredSnapshots(cap, where, nid, "end"),
            terminal=bool(terminal),
            # An approval the secret did not sign is no approval (see sign_approval).
            approved=bool(approved) and self._approval_holds(nid, task_key, approved_sig),
            hits=hits,
            failures=failures,
            last_used=last_used,
            result=result,
        )
        return node, forged_end

    def _snapshot(self, row: Sequence[Any]) -> bool:
        """Whether a ``mm_snapshots`` row's signature (with a secret) is good. Raises
        :class:`.rows.Damaged` for a row whose columns muscle-mem could not have
        written. Its data is checked against its digest, and for its form, when first
        used (see :class:`_StoredSnapshots`)."""
        nid, which, digest, data, sig = row
        which = rows.slot(which)
        rows.blob(digest, "digest")
        data = rows.blob(data, "data")
        sig = rows.optional_blob(sig, "sig")
        return not self._key or valid(sig, self._sign_snapshot(nid, which, data))

    # -- signatures -------------------------------------------------------------------------

    def _check_signer(self, cur: Cursor) -> None:
        """In a write that records signed rows: refuse it if the store's rows are signed
        with another secret (or none, or with one where this worker has none)."""
        ours = signer(self._key)
        cur.execute("SELECT value FROM mm_meta WHERE key = ?", (_SIGNED_BY,))
        row = cur.fetchone()
        recorded = row[0] if row else self._first_signer(cur)
        if recorded == ours:
            return
        if recorded == "":  # no rows signed yet: this secret signs the store from now on
            cur.execute(
                "UPDATE mm_meta SET value = ? WHERE key = ? AND value = ''", (ours, _SIGNED_BY)
            )
            cur.execute("SELECT value FROM mm_meta WHERE key = ?", (_SIGNED_BY,))
            if cur.fetchone()[0] == ours:  # (or another worker's secret got there first)
                return
        if self._key is None:
            problem = "its rows are signed with a secret, and this worker has none"
        else:
            problem = "its rows are signed with another secret than this worker's"
        raise StoreError(
            f"refusing to write to {self.url}: {problem}, so what it recorded would replace "
            "the fleet's signed rows and be rejected by every other worker. Give it the "
            "secret the store's writers use (secret= or $MUSCLE_MEM_SECRET); to sign the "
            "store with a new secret, remove its trees first (`muscle-mem rm --all`)"
        )

    def _first_signer(self, cur: Cursor) -> str:
        """Record which secret signs the store, for a store that has not said so yet
        (new, or written before stores recorded it): "" if no row is signed, "?" (not
        recorded) if this worker can't tell whose secret signed them."""
        cur.execute(
            "SELECT id, parent, task_key, tool, code, call, sig FROM mm_nodes "
            "WHERE sig IS NOT NULL LIMIT 20"
        )
        signed = cur.fetchall()
        found = "" if not signed else "?"
        for nid, parent, task_key, tool, code, call, sig in signed:
            try:
                step = rows.step(tool, code, call)
                mine = valid(rows.blob(sig, "sig"), self._sign_node(nid, parent, task_key, step))
            except rows.Damaged:
                continue
            if self._key and mine:
                found = signer(self._key)
                break
        if found == "?":
            return found
        cur.execute(
            "INSERT INTO mm_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (_SIGNED_BY, found),
        )
        cur.execute("SELECT value FROM mm_meta WHERE key = ?", (_SIGNED_BY,))
        return str(cur.fetchone()[0])

    def _sign_node(self, nid: str, parent: str, task_key: str, step: Step) -> bytes | None:
        return sign_node(self._key, nid, parent, task_key, step)

    def _sign_result(self, nid: str, task_key: str, result: bytes | None) -> bytes | None:
        return sign_result(self._key, nid, task_key, result)

    def _sign_snapshot(self, nid: str, which: str, data: bytes) -> bytes | None:
        return sign_snapshot(self._key, nid, which, data)

    def _sign_approval(self, nid: str, task_key: str) -> bytes | None:
        return sign_approval(self._key, nid, task_key)

    def _approval_holds(self, nid: str, task_key: str, sig: bytes | None) -> bool:
        """Whether an approval's signature holds (any does in a store without a secret)."""
        return self._key is None or valid(sig, self._sign_approval(nid, task_key))


class _StoredSnapshots(SnapshotSet):
    """A node's snapshots for one slot as read from a store, each checked the first time
    it is used: its data against the digest its row keeps (a flipped byte), then for
    its form (a crafted row's may not be an encoding). Used: matched by an equality
    check, decoded for a compare, looked up (the "end" slot), listed (by an export, a
    merge). Not on reading, which would hash, and parse, every snapshot of a tree when
    most are never used. One that fails is left out from then on, with a
    DamagedRowWarning naming its row, before anything uses it."""

    __slots__ = ("_row", "_unchecked", "_where")

    def __init__(self, cap: int, where: str, nid: str, which: str) -> None:
        super().__init__(cap)
        self._where = where
        self._row = f"({nid}, {which})"
        self._unchecked: dict[bytes, bytes] = {}  # data: the digest its row keeps

    def stored(self, data: bytes, digest: bytes) -> None:
        """Load a snapshot read from a row, with the digest the row keeps."""
        self.load(data)
        self._unchecked[data] = digest

    def match(
        self, check: Check, current: Snapshot, hints: Sequence[bytes] = ()
    ) -> tuple[float, bytes] | None:
        key = current.key  # an equality check's match: a compare's goes through value()
        if check.compare is None and key in self._unchecked and not self._checked(key):
            return None
        return super().match(check, current, hints)

    def __contains__(self, key: bytes) -> bool:
        return super().__contains__(key) and (key not in self._unchecked or self._checked(key))

    def value(self, key: bytes, like: Any = None) -> Any:
        if key in self._unchecked and not self._checked(key):
            raise DecodeError(f"snapshot {self._row} in {self._where} is damaged")
        return super().value(key, like)

    def keys(self) -> list[bytes]:
        for key in list(self._unchecked):
            self._checked(key)
        return super().keys()

    def _checked(self, key: bytes) -> bool:
        """Check ``key`` (unchecked); if it fails, leave it out, and say so once."""
        digest = self._unchecked.get(key)
        if digest is None:
            return super().__contains__(key)  # checked meanwhile, by another thread
        problem = None
        if _digest(key) != digest:
            problem = rows.Damaged("its data does not match its digest")
        else:
            try:
                rows.checked_value(key, "data")
            except rows.Damaged as damaged:
                problem = damaged
        if problem is not None and self._items.pop(key, _GONE) is not _GONE:
            damage = rows.Damage(self._where)
            damage.add("mm_snapshots", self._row, problem)
            damage.warn(stacklevel=4)
        self._unchecked.pop(key, None)
        return problem is None


_GONE = object()


def _moved(changes: Changes, tree: Tree) -> list[tuple[str, str, bytes]]:
    """The (node, which, digest) of each snapshot the run matched that moves up its
    node's LRU order: not those it replaces, nor one that already led it."""
    return [
        (m.node, m.which, _digest(m.key))
        for m in changes.matched
        if not m.replaces and not _was_latest(tree, m)
    ]


def _encode_names(names: tuple[str, ...]) -> str:
    return json.dumps(list(names))


def _run_row(
    run: RunRecord, encode: Callable[[tuple[str, ...]], str] = _encode_names
) -> tuple[Any, ...]:
    """``run`` as the values of an mm_runs row, in the order of ``_RUN_COLUMNS``;
    ``encode`` makes its tags' and params' JSON."""
    return (
        run.task_key,
        encode(run.tags),
        encode(run.params),
        str(run.status),
        run.replayed,
        run.recorded,
        run.diverged_at,
        run.reason,
        run.started_at,
        run.duration_s,
        run.tokens,
        run.cost,
        run.path,
        run.about,
    )


def new_uid() -> bytes:
    """A new id for a run's log line (``mm_runs.uid``)."""
    return os.urandom(16)


def _digest_ends(cur: Cursor) -> None:
    """Give the ends recorded before stores kept end digests theirs (in the upgrade to
    :data:`.schema.END_DIGESTS`). What such a result was can't be known: one that is
    not an encoding is still refused when read, one that is, is taken as recorded."""
    cur.execute("SELECT id, result FROM mm_nodes WHERE terminal = 1")
    digests = []
    for nid, result in cur.fetchall():
        try:
            digests.append(
                (rows.end_digest(rows.text(nid, "id"), rows.optional_blob(result, "result")), nid)
            )
        except rows.Damaged:
            continue  # left without one: reading it says what is wrong
    for start in range(0, len(digests), 1_000):  # (a bounded wait each: see .deadline)
        cur.executemany(
            "UPDATE mm_nodes SET end_digest = ? WHERE id = ?", digests[start : start + 1_000]
        )


def _was_latest(tree: Tree, matched: Matched) -> bool:
    """Whether the matched snapshot already was its set's most recent (before apply)."""
    node = tree.nodes.get(matched.node)
    if node is None:
        return False
    return (node.pre if matched.which == "pre" else node.post).is_latest(matched.key)


def _present(cur: Cursor, task_key: str, nid: str) -> bool:
    if nid == root_id(task_key):
        return True
    cur.execute("SELECT 1 FROM mm_nodes WHERE id = ?", (nid,))
    return cur.fetchone() is not None


def _generation(cur: Cursor, task_key: str) -> int:
    """The task key's generation: -1 when it has no row, -2 when its row's counter is
    damaged (SQLite keeps whatever is written to a column)."""
    cur.execute("SELECT generation FROM mm_tasks WHERE task_key = ?", (task_key,))
    row = cur.fetchone()
    if not row:
        return -1
    if type(row[0]) is int:  # every run asks: the usual answer takes no more
        return row[0]
    try:
        return rows.whole(row[0], "generation")
    except rows.Damaged as problem:
        damage = rows.Damage("the task list")
        damage.add("mm_tasks", rows.name(task_key), problem)
        damage.warn(stacklevel=5)
        # Any change to the task's rows does arithmetic on the counter, which makes it
        # a number again: until then nothing changed, and a copy read now stays current.
        return -2


def _digest(data: bytes) -> bytes:
    return blake2b(data, digest_size=16).digest()


def _run_record(row: Sequence[Any]) -> RunRecord:
    """The run a ``mm_runs`` row holds; raises :class:`.rows.Damaged` for one muscle-mem
    could not have written."""
    (task_key, tags, params, status, replayed, recorded, diverged_at, reason) = row[:8]
    started_at, duration_s, tokens, cost, path, about = row[8:]
    try:
        status = Status(status)
    except ValueError:
        raise rows.Damaged(f"status is {rows.name(repr(status))}, not a run status") from None
    return RunRecord(
        task_key=rows.text(task_key, "task_key"),
        tags=rows.strings(tags, "tags"),
        params=rows.strings(params, "params"),
        status=status,
        replayed=rows.count(replayed, "replayed"),
        recorded=rows.count(recorded, "recorded"),
        diverged_at=None if diverged_at is None else rows.count(diverged_at, "diverged_at"),
        reason=rows.optional_text(reason, "reason"),
        started_at=rows.number(started_at, "started_at"),
        duration_s=rows.number(duration_s, "duration_s"),
        tokens=rows.count(tokens, "tokens"),
        cost=rows.number(cost, "cost"),
        path=rows.optional_text(path, "path"),
        about=rows.optional_text(about, "about"),
    )


__all__ = ["DEFAULT_SNAPSHOT_CAP", "SQLStore"]
