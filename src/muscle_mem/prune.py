"""Which cached steps to forget, and forgetting them: the policy behind ``muscle-mem prune``.

    from muscle_mem import prune
    plans = prune.plan(store, unused_since=time.time() - 30 * 86400, failing=True)
    for p in plans:
        print(p.task_key, f"{len(p.nodes)} of {p.steps} steps", p.reasons)
    removed = prune.apply(store, plans)

The rules, per task key's tree:

- **unused**: a step goes when neither it nor any step below it was used since
  ``unused_since`` (epoch seconds). A step stays while a path below it is in use: a
  continuation an agent recorded after the step's old sequel failed, say.
- **failing**: a step goes when its checks failed more often than they passed
  (``failures > hits``).
- Removing a step removes everything below it (nothing hangs from nothing), and the
  ancestors that would be left ending nowhere: no other child, and no recorded path
  ending there.

Planning only reads. :func:`apply` removes through :meth:`Store.remove`, which also takes
what was recorded below a chosen step between the plan and the removal, so a plan may be
shown and confirmed first without leaving orphan rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import ConfigurationError
from .store import Store
from .trie import Tree

__all__ = ["TaskPlan", "apply", "plan", "plan_tree"]


@dataclass(frozen=True)
class TaskPlan:
    """What to remove from one task key's tree, and why."""

    task_key: str
    nodes: frozenset[str]  # every node id to remove, the ones below the chosen included
    steps: int  # how many steps the tree held when planned
    unused: frozenset[str]  # the steps chosen because nothing at or below them was used
    failing: frozenset[str]  # the steps chosen because their checks failed more than passed

    @property
    def reasons(self) -> tuple[str, ...]:
        """Which rules chose something here: ``("unused",)``, ``("failing",)`` or both."""
        rules = (("unused", self.unused), ("failing", self.failing))
        return tuple(why for why, chosen in rules if chosen)

    @property
    def left(self) -> int:
        """How many steps the tree keeps; 0 when the whole task key goes."""
        return self.steps - len(self.nodes)


def plan(
    store: Store,
    *,
    unused_since: float | None = None,
    failing: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskPlan]:
    """Per task key with something to remove, what the rules (see the module) choose;
    task keys left whole are not listed. Reads every task key's tree, removes nothing.

    ``progress(done, total)`` is called after each task key is read.
    """
    if unused_since is None and not failing:
        raise ConfigurationError("say what to prune: unused_since=<epoch seconds>, failing=True")
    plans = []
    tasks = store.tasks()
    for done, info in enumerate(tasks, 1):
        found = plan_tree(store.tree(info.task_key), unused_since=unused_since, failing=failing)
        if found is not None:
            plans.append(found)
        if progress is not None:
            progress(done, len(tasks))
    return plans


def plan_tree(
    tree: Tree, *, unused_since: float | None = None, failing: bool = False
) -> TaskPlan | None:
    """:func:`plan` for one tree: what to remove from it, or None if nothing."""
    unused = _unused_since(tree, unused_since) if unused_since is not None else set()
    bad = {n.id for n in tree if n.step is not None and n.failures > n.hits} if failing else set()
    nodes = tree.removal_set(unused | bad)
    if not nodes:
        return None
    return TaskPlan(tree.task_key, frozenset(nodes), len(tree), frozenset(unused), frozenset(bad))


def apply(
    store: Store,
    plans: Iterable[TaskPlan],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Remove what ``plans`` chose from ``store``; returns how many nodes were removed.

    ``progress(done, total)`` is called after each task key.
    """
    chosen = list(plans)
    removed = 0
    for done, each in enumerate(chosen, 1):
        removed += store.remove(each.task_key, each.nodes)
        if progress is not None:
            progress(done, len(chosen))
    return removed


def _unused_since(tree: Tree, cutoff: float) -> set[str]:
    # A step's age is that of the newest use at or below it, so a recent path keeps the
    # steps it hangs from.
    newest: dict[str, float] = {}
    for node in reversed(list(tree)):  # a tree lists parents before their children
        newest[node.id] = max([node.last_used, *(newest[c.id] for c in node.children)])
    return {n.id for n in tree if n.step is not None and newest[n.id] < cutoff}
