"""trie.py: a node's snapshot set, the tree a run's changes are applied to, and the
descendant walk every remover uses."""

from __future__ import annotations

import pytest

from muscle_mem import Check
from muscle_mem.codec import encode
from muscle_mem.models import Changes, Learned, Matched, RecordedCall, Snapshot, Step, node_id
from muscle_mem.trie import SnapshotSet, Tree, descendants


def snap(value: object) -> Snapshot:
    return Snapshot(encode(value), value)


def step(name: str) -> Step:
    return Step(f"tests.{name}", "tool1:x", encode(((), {})))


def call(name: str, pre: object = None) -> RecordedCall:
    return RecordedCall(step(name), None if pre is None else snap(pre), None)


# -- SnapshotSet ----------------------------------------------------------------------


def test_a_snapshot_set_keeps_distinct_snapshots_least_recent_first_and_evicts_past_its_cap():
    kept = SnapshotSet(cap=3)
    for value in ("a", "b", "a", "c", "d"):
        kept.add(snap(value))
    assert kept.keys() == [encode("a"), encode("c"), encode("d")]  # "b" was least recent
    assert kept.latest() == encode("d") and kept.is_latest(encode("d"))
    assert len(kept) == 3 and encode("b") not in kept


def test_older_snapshots_go_to_the_back_and_only_while_there_is_room():
    kept = SnapshotSet(cap=2)
    kept.add(snap("mine"))
    assert kept.add_older(encode("theirs")) is True
    assert kept.add_older(encode("mine")) is False  # already here
    assert kept.add_older(encode("full")) is False  # no room left
    assert kept.keys() == [encode("theirs"), encode("mine")]


def test_refresh_moves_a_match_to_the_front_or_puts_the_fresh_capture_in_its_place():
    kept = SnapshotSet()
    for value in ("a", "b"):
        kept.add(snap(value))
    kept.refresh(encode("a"), snap("a"), learn=False)
    assert kept.keys() == [encode("b"), encode("a")]
    kept.refresh(encode("b"), snap("b2"), learn=True)
    assert kept.keys() == [encode("a"), encode("b2")]


def test_stored_values_are_rebuilt_from_bytes_not_aliased():
    kept = SnapshotSet()
    live = {"page": "v1"}
    kept.add(snap(live))
    live["page"] = "v2"
    assert kept.value(encode({"page": "v1"}), like=live) == {"page": "v1"}


def test_an_equality_check_is_one_lookup():
    kept = SnapshotSet()
    kept.add(snap("v1"))
    assert kept.match(Check(capture=lambda: None), snap("v1")) == (1.0, encode("v1"))
    assert kept.match(Check(capture=lambda: None), snap("v2")) is None


def test_a_compare_tries_the_identical_snapshot_then_the_hints_then_the_most_recent():
    kept = SnapshotSet()
    for value in (1, 2, 3, 4):
        kept.add(snap(value))
    tried: list[object] = []

    def never(current: object, candidate: object) -> bool:
        tried.append(candidate)
        return False

    assert kept.match(Check(lambda: None, never), snap(2), hints=[encode(1), encode(2)]) is None
    assert tried == [2, 1, 4, 3]  # each once, the hint equal to the capture not again


def test_scores_are_ranked_and_the_first_yes_wins_without_a_threshold():
    kept = SnapshotSet()
    for value in (10, 20, 30):
        kept.add(snap(value))

    def closeness(current: int, candidate: int) -> float:
        return 1 / (1 + abs(current - candidate))

    scored = Check(lambda: None, closeness, threshold=0.05)
    assert kept.match(scored, snap(21)) == (0.5, encode(20))
    first_yes = Check(lambda: None, lambda current, candidate: candidate >= 20)
    assert kept.match(first_yes, snap(0)) == (1.0, encode(30))  # most recent first


# -- Tree and Changes -----------------------------------------------------------------


def recorded(tree: Tree, *names: str) -> Changes:
    return Changes.of_run(
        tree.task_key, graft_at=tree.root.id, calls=tuple(call(n, pre=n) for n in names)
    )


def test_a_recorded_path_becomes_nodes_with_their_snapshots_and_a_recorded_end():
    tree = Tree("task1:t")
    changes = recorded(tree, "a", "b")
    path = tree.apply(changes, now=5.0)
    assert [n.id for n in path] == [s.id for s in changes.path]
    assert path[0].parent == tree.root.id and path[1].parent == path[0].id
    assert path[1].terminal and not path[0].terminal
    assert encode("a") in path[0].pre and path[1].last_used == 5.0
    assert tree.apply(recorded(tree, "a", "b")) == path  # the same path: the same nodes
    assert len(tree) == 2


def test_a_hit_counts_and_refreshes_but_never_adds():
    tree = Tree("task1:t")
    a, b = tree.apply(recorded(tree, "a", "b"))
    matched = Matched(a.id, "pre", encode("a"), snap("a"), learn=False)
    hit = Changes(tree.task_key, matched=(matched,), executed=(a.id, b.id))
    assert not hit.structural and hit.end is None
    tree.apply(hit, now=9.0)
    assert (a.hits, b.hits, a.last_used, len(tree)) == (1, 1, 9.0, 2)
    tree.apply(Changes(tree.task_key, failed=(b.id, "gone")))
    assert b.failures == 1


def test_learned_snapshots_are_added_only_along_a_recorded_path():
    tree = Tree("task1:t")
    (a,) = tree.apply(recorded(tree, "a"))
    learned = (Learned(a.id, "post", snap("new")),)
    tree.apply(Changes(tree.task_key, learned=learned))  # no path recorded: not learned
    assert len(a.post) == 0
    tree.apply(Changes.of_run(tree.task_key, graft_at=a.id, learned=learned))
    assert encode("new") in a.post and a.terminal  # no calls: the graft node is the end


def test_a_path_whose_graft_node_is_gone_is_dropped():
    tree = Tree("task1:t")
    orphan = Changes.of_run(tree.task_key, graft_at="removed meanwhile", calls=(call("x"),))
    assert orphan.structural and orphan.end == orphan.path[0].id
    assert tree.apply(orphan) == [] and len(tree) == 0
    assert orphan.without_path() == Changes(tree.task_key)


def test_path_ids_are_computed_once_as_the_hash_of_parent_and_step():
    changes = Changes.of_run("task1:t", graft_at="root", calls=(call("a"), call("b")))
    first, second = changes.path
    assert first.id == node_id("root", step("a"))
    assert second.id == node_id(first.id, step("b")) and second.parent == first.id


def test_changes_are_immutable():
    changes = Changes("task1:t")
    with pytest.raises(AttributeError):
        changes.graft_at = "x"  # type: ignore[misc]


def test_merge_adds_what_is_missing_once():
    ours, theirs = Tree("task1:t"), Tree("task1:t")
    ours.apply(recorded(ours, "a"))
    theirs.apply(recorded(theirs, "a", "b"))
    assert ours.merge(theirs) == (1, 1)  # node b and its snapshot
    assert ours.merge(theirs) == (0, 0)
    assert len(ours) == 2


# -- the descendant walk ----------------------------------------------------------------


def test_below_is_a_node_and_everything_under_it():
    tree = Tree("task1:t")
    a, b, c = tree.apply(recorded(tree, "a", "b", "c"))
    (d,) = tree.apply(Changes.of_run(tree.task_key, graft_at=a.id, calls=(call("d"),)))
    assert tree.below([b.id]) == {b.id, c.id}
    assert tree.below([a.id, "unknown"]) == {a.id, b.id, c.id, d.id}


def test_a_removal_takes_ancestors_left_ending_nowhere_but_not_shared_or_recorded_ends():
    tree = Tree("task1:t")
    a, b, c = tree.apply(recorded(tree, "a", "b", "c"))
    assert tree.removal_set([c.id]) == {a.id, b.id, c.id}  # nothing else ends there
    tree.apply(Changes.of_run(tree.task_key, graft_at=a.id, calls=(call("d"),)))
    assert tree.removal_set([c.id]) == {b.id, c.id}  # a still leads to d
    b.terminal = True
    assert tree.removal_set([c.id]) == {c.id}  # b is a recorded end of its own
    assert tree.removal_set([tree.root.id]) == set()


def test_descendants_walks_any_child_relation_once():
    children = {"r": ["a", "b"], "a": ["c"], "c": ["a"]}  # a cycle is walked once
    assert descendants(["a"], lambda nid: children.get(nid, ())) == {"a", "c"}
    assert descendants([], lambda nid: ()) == set()
