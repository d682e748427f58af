"""The cache's shape: a trie of steps per task key, and the snapshots kept at each node.

All trajectories recorded for one task key share one tree. A node stands for a step
(tool, code fingerprint, argument template) after the path that leads to it, and its id
is a hash of its parent's id and its step: two processes that record the same path make
the same nodes, and merging them is an idempotent insert.

A node remembers every distinct environment the agent was recorded in there, as the
de-duplicated set of its checks' snapshots, capped by evicting the least recently
matched. A hit refreshes the snapshot it matched instead of adding one, so hits never
grow the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import Check
from .codec import decode
from .errors import DecodeError
from .models import SLOTS, Changes, Slot, Snapshot, Step, node_id, root_id
from .provenance import uses
from .templates import has_params, resolve

DEFAULT_SNAPSHOT_CAP = 10_000


_IMMUTABLE = (str, int, float, bool, bytes, type(None))


def _immutable(values: tuple[Any, ...]) -> bool:
    return all(type(v) in _IMMUTABLE or (type(v) is tuple and _immutable(v)) for v in values)


class SnapshotSet:
    """A node's snapshots for one check: de-duplicated by encoding, least recent first."""

    __slots__ = ("_items", "cap")

    def __init__(self, cap: int = DEFAULT_SNAPSHOT_CAP) -> None:
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self.cap = cap

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: bytes) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[bytes]:
        """The snapshots' keys, least recently matched first (a copy, like :meth:`keys`)."""
        return iter(self.keys())

    def latest(self) -> bytes | None:
        """The most recently matched snapshot's key."""
        return next(reversed(self._items), None)

    def is_latest(self, key: bytes) -> bool:
        return self.latest() == key

    def keys(self) -> list[bytes]:
        """Least recently matched first. A copy, so a writer cannot disturb a reader."""
        return list(self._items)

    def value(self, key: bytes, like: Any = None) -> Any:
        """The stored snapshot for ``key``, decoded on first use into ``like``'s types.

        Snapshots stay bytes until a compare needs them (equality checks never decode),
        and are then rebuilt from the bytes, so they never alias a live object.
        """
        value = self._items[key]
        if value is _UNDECODED:
            value = self._items[key] = decode(key, like)  # keeps its place in the order
        return value

    def load(self, key: bytes) -> None:
        """Append a stored snapshot as the most recent, evicting past the cap."""
        self.add(Snapshot(key, None))

    def add(self, snapshot: Snapshot) -> None:
        items = self._items
        if snapshot.key in items:
            items.move_to_end(snapshot.key)
            return
        # Kept as bytes, not the live capture: the user's object may change later.
        items[snapshot.key] = _UNDECODED
        while len(items) > self.cap:
            items.popitem(last=False)

    def add_older(self, key: bytes) -> bool:
        """Add a snapshot as the least recently matched, if the cap leaves room; whether
        it was added. (Imported environments rank below those matched here.)"""
        items = self._items
        if key in items or len(items) >= self.cap:
            return False
        items[key] = _UNDECODED
        items.move_to_end(key, last=False)
        return True

    def refresh(self, matched: bytes, fresh: Snapshot, learn: bool) -> None:
        """Mark ``matched`` as just used; with ``learn`` it takes the fresh capture's place."""
        items = self._items
        if learn and fresh.key != matched:
            items.pop(matched, None)
            items[fresh.key] = _UNDECODED
            items.move_to_end(fresh.key)
        elif matched in items:
            items.move_to_end(matched)

    def match(
        self, check: Check, current: Snapshot, hints: Sequence[bytes] = ()
    ) -> tuple[float, bytes] | None:
        """The best stored snapshot that ``current`` passes ``check`` against.

        Equality checks are one hash lookup. With a compare, candidates are judged in
        :meth:`_order`; without a threshold the first yes wins, scores are ranked and
        the highest wins. A compare that raises ends the search with
        :class:`~muscle_mem.checks.CompareRaised` (the check fails, the caller says why);
        one that returns neither a bool nor a number, with a ``ConfigurationError``.
        """
        if check.compare is None:
            return (1.0, current.key) if current.key in self._items else None
        best: tuple[float, bytes] | None = None
        live = current.value
        for key in self._order(current.key, hints):
            try:
                value = self.value(key, live)
            except (KeyError, DecodeError):
                continue  # evicted meanwhile, or of a class this process can't rebuild
            found = check.judge(live, value)
            if found is None:
                continue
            if found[1]:
                return found[0], key
            if best is None or found[0] > best[0]:
                best = found[0], key
        return best

    def _order(self, first: bytes, hints: Sequence[bytes]) -> Iterator[bytes]:
        """The stored keys in the order a compare should try them: the one identical to
        the current capture (an equality-style compare stops there), then ``hints`` (the
        snapshots this replay matched at its last steps: a step often sees what the one
        before it saw), then the rest, most recently matched first. Each key once."""
        items = self._items
        if first in items:
            yield first
        tried = [first]
        for key in hints:
            if key in items and key not in tried:
                tried.append(key)
                yield key
        for key in reversed(list(items)):  # a copy: writers may change the set meanwhile
            if key not in tried:
                yield key


_MISSING = object()
_UNDECODED = object()


@dataclass(eq=False)
class Node:
    """A step in a task key's tree, with the environments it was recorded in."""

    id: str
    parent: str | None
    step: Step | None  # None at the root
    pre: SnapshotSet = field(default_factory=SnapshotSet)
    post: SnapshotSet = field(default_factory=SnapshotSet)
    # At a recorded end: the values its runs gave the params the path has no place for
    # (see Changes.unused), so another value for one of them never takes this path.
    ends: SnapshotSet = field(default_factory=SnapshotSet)
    terminal: bool = False  # a recorded trajectory ended here
    # A person approved the path that ends here (Store.approve): replay with
    # approved_only ends only at such ends. New ends start unapproved; recording the
    # path again keeps the mark.
    approved: bool = False
    hits: int = 0
    failures: int = 0
    last_used: float = 0.0
    children: tuple[Node, ...] = ()
    # What the agent returned on the latest recording that ended here, templated and
    # encoded; None if it could not be stored or was recorded before results were kept.
    result: bytes | None = field(default=None, repr=False)
    _template: Any = field(default=_MISSING, repr=False)
    _result_template: tuple[bytes, Any] | None = field(default=None, repr=False)
    _templated: bool = field(default=False, repr=False)
    _shareable: bool = field(default=False, repr=False)
    _path_params: frozenset[str] | None = field(default=None, repr=False)

    def snapshots(self, which: Slot) -> SnapshotSet:
        """The snapshots of the node's pre-check or post-check, or its ``"end"`` set."""
        return self.pre if which == "pre" else self.post if which == "post" else self.ends

    def template(self) -> tuple[Any, bool]:
        """The step's decoded ``(args, kwargs)`` template, and whether it has params."""
        if self._template is _MISSING:
            assert self.step is not None
            template = decode(self.step.call)
            self._templated = has_params(template)
            args, kwargs = template
            self._shareable = _immutable(args) and _immutable(tuple(kwargs.values()))
            self._template = template
        return self._template, self._templated

    def arguments(
        self, params: dict[str, Any], results: Sequence[Any] = (), ahead: bool = False
    ) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
        """The step's ``(args, kwargs)`` for a run with ``params`` whose steps before this
        one returned ``results`` (``ahead``: some of them, see :func:`resolve`), and
        whether params or results went into them.

        Raises what :func:`resolve` raises. Arguments a tool could mutate are fresh
        copies; immutable ones (the common case) are shared, which saves a copy a step.
        """
        template, templated = self.template()
        if self._shareable:
            return (*template, False)
        return (*resolve(template, params, results, ahead), templated)

    def result_template(self) -> Any:
        """The decoded template of the result kept here (None if none is).

        Raises :class:`DecodeError` for bytes this process can't read.
        """
        data = self.result
        if data is None:
            return None
        cached = self._result_template
        if cached is None or cached[0] is not data:  # decoded once per stored result
            cached = self._result_template = (data, decode(data))
        return cached[1]

    def recorded_result(self, params: dict[str, Any], results: Sequence[Any] = ()) -> Any:
        """The result kept here, with ``params`` and the path's ``results`` filled in: a
        fresh copy each time.

        Raises :class:`DecodeError` for bytes this process can't read, and what
        :func:`resolve` raises.
        """
        return resolve(self.result_template(), params, results)


class Tree:
    """All recorded trajectories of one task key, as nodes indexed by id."""

    def __init__(self, task_key: str, snapshot_cap: int = DEFAULT_SNAPSHOT_CAP) -> None:
        self.task_key = task_key
        self.snapshot_cap = snapshot_cap
        self.root = Node(root_id(task_key), None, None)
        self.nodes: dict[str, Node] = {self.root.id: self.root}
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes.values()))

    def __len__(self) -> int:
        return len(self.nodes) - 1

    def path_params(self, node: Node) -> frozenset[str]:
        """The names of the params the steps from the root to ``node`` refer to. A node's
        id hashes its path, so this never changes and is worked out once per node.

        Raises :class:`DecodeError` for a step this process can't read.
        """
        chain = []
        at: Node | None = node
        while at is not None and at._path_params is None:
            chain.append(at)
            at = self.nodes.get(at.parent) if at.parent is not None else None
        known: frozenset[str] = frozenset()
        if at is not None and at._path_params is not None:
            known = at._path_params
        for below in reversed(chain):
            if below.step is not None:
                known = known | uses(below.template()[0], set())
            below._path_params = known
        return known

    def insert(self, parent: Node, step: Step, nid: str | None = None) -> Node:
        """The child of ``parent`` for ``step`` (whose id is ``nid``, when the caller has
        computed it already), made if it is new (idempotent)."""
        if nid is None:
            nid = node_id(parent.id, step)
        node = self.nodes.get(nid)
        if node is None:
            cap = self.snapshot_cap
            node = Node(nid, parent.id, step, SnapshotSet(cap), SnapshotSet(cap), SnapshotSet(cap))
            self.nodes[nid] = node
            # Copy-on-write, so a replay iterating the old tuple is never disturbed.
            parent.children = (*parent.children, node)
        return node

    def apply(self, changes: Changes, now: float | None = None) -> list[Node]:
        """Apply one run's changes; returns the nodes of the path it recorded, if any."""
        now = time.time() if now is None else now
        with self._lock:
            for m in changes.matched:  # a hit's hot loop: no call to pick the set
                node = self.nodes.get(m.node)
                if node is not None:
                    (node.pre if m.which == "pre" else node.post).refresh(m.key, m.fresh, m.learn)
            for nid in changes.executed:
                node = self.nodes.get(nid)
                if node is not None:
                    node.hits += 1
                    node.last_used = now
            for nid in changes.failed:
                node = self.nodes.get(nid)
                if node is not None:
                    node.failures += 1
            if changes.graft_at is None:
                return []
            node = self.nodes.get(changes.graft_at)
            if node is None:
                return []  # removed (rm, prune) while the run replayed: nothing to hang it on
            for learned in changes.learned:
                owner = self.nodes.get(learned.node)
                if owner is not None:
                    owner.snapshots(learned.which).add(learned.snapshot)
            path = []
            for step in changes.path:
                node = self.insert(node, step.call.step, step.id)
                if step.call.pre is not None:
                    node.pre.add(step.call.pre)
                if step.call.post is not None:
                    node.post.add(step.call.post)
                node.last_used = now
                path.append(node)
            node.terminal = True
            node.result = changes.result  # the latest recording's (see Changes.result)
            if changes.unused is not None:
                node.ends.add(Snapshot(changes.unused, None))
            return path

    def merge(self, other: Tree) -> tuple[int, int]:
        """Add ``other``'s nodes and snapshots that this tree lacks (see Store.merge);
        returns how many nodes and snapshots were new."""
        new_nodes = new_snapshots = 0
        with self._lock:
            for theirs in other.nodes.values():  # parents come before their children
                if theirs.step is None:
                    continue
                assert theirs.parent is not None
                parent = self.nodes.get(theirs.parent)
                if parent is None:
                    continue  # under a node this tree has dropped: unreachable
                new_nodes += theirs.id not in self.nodes
                ours = self.insert(parent, theirs.step)
                ours.terminal = ours.terminal or theirs.terminal
                ours.approved = ours.approved or theirs.approved
                if ours.result is None:  # a result kept here stays, as its signature does
                    ours.result = theirs.result
                ours.hits = max(ours.hits, theirs.hits)
                ours.failures = max(ours.failures, theirs.failures)
                ours.last_used = max(ours.last_used, theirs.last_used)
                for which in SLOTS:
                    mine = ours.snapshots(which)
                    for key in reversed(theirs.snapshots(which).keys()):
                        new_snapshots += mine.add_older(key)
        return new_nodes, new_snapshots

    def ends(self) -> list[Node]:
        """The recorded ends, in the order a depth-first walk from the root meets them
        (children oldest first): how ``muscle-mem show`` and ``approve --path`` number
        a task's paths, path 1 first."""
        found = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.terminal and node.step is not None:
                found.append(node)
            stack.extend(reversed(node.children))
        return found

    def path_to(self, end: Node) -> list[Node]:
        """The nodes from the root's first child down to ``end``."""
        path = []
        at: Node | None = end
        while at is not None and at.step is not None:
            path.append(at)
            at = self.nodes.get(at.parent) if at.parent is not None else None
        return path[::-1]

    def below(self, roots: Iterable[str]) -> set[str]:
        """The ids of the nodes ``roots`` (those in this tree) and every node under them."""
        nodes = self.nodes
        return descendants(
            (nid for nid in roots if nid in nodes),
            lambda nid: [child.id for child in nodes[nid].children],
        )

    def removal_set(self, roots: Iterable[str]) -> set[str]:
        """The ids to remove to drop the nodes ``roots`` with all below them, and the
        ancestors that would be left ending nowhere (no child, no recorded end)."""
        doomed = self.below(nid for nid in roots if nid != self.root.id)
        for nid in list(doomed):
            node = self.nodes[nid]
            while node.parent is not None and node.parent != self.root.id:
                node = self.nodes[node.parent]
                if node.id in doomed or node.terminal:
                    break
                if any(child.id not in doomed for child in node.children):
                    break
                doomed.add(node.id)
        return doomed


def descendants(roots: Iterable[str], children: Callable[[str], Iterable[str]]) -> set[str]:
    """``roots`` and every node below them, where ``children(id)`` lists a node's
    children: the one walk for a tree in memory and for rows read from a store."""
    found: set[str] = set()
    stack = list(roots)
    while stack:
        nid = stack.pop()
        if nid not in found:
            found.add(nid)
            stack.extend(children(nid))
    return found
