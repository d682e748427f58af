"""The benchmark workloads, written only against the README API.

The same functions run under the original muscle-mem 0.1.0 and under this project, so
they use nothing but ``Check``, ``@engine.function``, ``set_agent``, ``finalize`` and
``engine(task)`` read as a bool. The two exceptions are marked and only ever run on this
project: ``Check(capture)`` without a compare, and ``Check(..., threshold=...)``.

Each workload takes ``make_engine`` (returns a fresh ``Engine()``; the harness decides
which store stands behind it) and returns a flat dict of measurements. Workloads that
must look inside the process at a given moment (memory, store size) take ``probe``,
which the harness implements per implementation.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from muscle_mem import Check

TASK = "fill in the form"
STEPS = 5  # the "5-step task"

MakeEngine = Callable[[], Any]
Probe = Callable[[str, Any, str], None]


def same(current: Any, recorded: Any) -> bool:
    """The README's equality-style compare: opaque to both engines."""
    return current == recorded


def expect(condition: Any, message: str) -> None:
    """Fail the workload loudly: a number measured on a wrong outcome is worthless."""
    if not condition:
        raise RuntimeError(message)


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def form_engine(make_engine: MakeEngine, check: Check, steps: int = STEPS) -> Any:
    """An engine whose agent fills ``steps`` fields, each call guarded by ``check``."""
    engine = make_engine()

    @engine.function(pre_check=check)
    def fill(field: str, value: str) -> str:
        return value

    def agent(task: str) -> None:
        for i in range(steps):
            fill(f"field-{i}", f"value-{i}")

    engine.set_agent(agent).finalize()
    return engine


def record_each(engine: Any, set_env: Callable[[int], None], count: int) -> float:
    """Run the task once in each of ``count`` new environments; seconds it took."""
    start = time.perf_counter()
    for i in range(count):
        set_env(i)
        expect(not engine(TASK), f"environment {i} is new, yet the engine reported a hit")
    return time.perf_counter() - start


def hit_latencies(
    engine: Any, set_env: Callable[[int], None], envs: list[int]
) -> tuple[list[float], float]:
    """Seconds per hit over the runs in ``envs`` (all recorded before), and the share of
    those runs that hit: a store that evicts environments turns some into misses."""
    samples = []
    for i in envs:
        set_env(i)
        elapsed, hit = time_call(lambda: engine(TASK))
        if hit:
            samples.append(elapsed)
    expect(samples, f"none of {len(envs)} recorded environments hit")
    return samples, len(samples) / len(envs)


# -- 1. many environments ----------------------------------------------------------------


def many_environments(
    make_engine: MakeEngine, k: int, hits: int = 300, compare: str = "equality", seed: int = 0
) -> dict[str, float]:
    """K environments, each recorded once, then ``hits`` runs in random ones.

    The environment is in the pre-check's capture and the task is the same everywhere,
    so every environment shares one cache key: this measures how lookups scale with
    the number of environments stored under a key. ``compare="none"`` is this
    project's hash lookup (``Check(capture)``), unknown to the original.
    """
    env = {"page": ""}

    def capture(field: str, value: str) -> str:
        return env["page"]

    def set_env(i: int) -> None:
        env["page"] = f"page-{i}"

    check = Check(capture, same) if compare == "equality" else Check(capture)
    engine = form_engine(make_engine, check)
    record_s = record_each(engine, set_env, k)
    rng = random.Random(seed)
    samples, hit_rate = hit_latencies(engine, set_env, [rng.randrange(k) for _ in range(hits)])
    return {
        "record_s": record_s,
        "record_per_env_us": record_s / k * 1e6,
        "hit_us": median_us(samples),
        "hit_rate": hit_rate,
    }


# -- 2. repeated hits --------------------------------------------------------------------


def repeated_hits(make_engine: MakeEngine, probe: Probe, hits: int = 10_000) -> dict[str, float]:
    """One task in one environment, hit ``hits`` times; ``probe`` looks at memory and
    store size after the first hit and after the last."""

    def capture(field: str, value: str) -> str:
        return "page-0"

    engine = form_engine(make_engine, Check(capture, same))
    expect(not engine(TASK), "the first run must be a miss")
    expect(engine(TASK), "the second run must be a hit")
    probe("first", engine, TASK)
    # Also probed at the 1,000th hit: by then bounded buffers (our memory store's run
    # log keeps 1,000 runs, SQLite's statement cache) are full, so what grows after it
    # would grow for ever.
    window = min(1_000, hits // 2)
    for done in range(2, hits):  # untimed: tracing allocations slows every run down
        engine(TASK)
        if done == window:
            probe("window", engine, TASK)
    expect(engine(TASK), "a hit must stay a hit")
    probe("last", engine, TASK)
    return {"hits": hits}


# -- 3. per-step overhead ----------------------------------------------------------------


def step_overhead(make_engine: MakeEngine, steps: int, repeats: int = 1_000) -> dict[str, float]:
    """A ``steps``-step task whose tools and captures do nothing, against the same calls
    made in a plain loop: what is left is the engine's own cost of a replay."""

    def capture(i: int) -> int:
        return i

    def act(i: int) -> int:
        return i

    def plain_loop() -> None:  # the physical limit of a replay: captures and tools only
        for i in range(steps):
            capture(i)
            act(i)

    engine = make_engine()
    tool = engine.function(pre_check=Check(capture, same))(act)

    def agent(task: str) -> None:
        for i in range(steps):
            tool(i)

    engine.set_agent(agent).finalize()
    expect(not engine(TASK), "the first run must be a miss")
    hit_samples, loop_samples = [], []
    for _ in range(repeats):  # interleaved, so drift in the machine hits both alike
        elapsed, hit = time_call(lambda: engine(TASK))
        expect(hit, "a recorded task in an unchanged environment must hit")
        hit_samples.append(elapsed)
        loop_samples.append(time_call(plain_loop)[0])
    hit_us, loop_us = median_us(hit_samples), median_us(loop_samples)
    return {
        "hit_us": hit_us,
        "loop_us": loop_us,
        "overhead_per_step_us": (hit_us - loop_us) / steps,
    }


# -- 4. end to end -----------------------------------------------------------------------


def end_to_end(
    make_engine: MakeEngine,
    steps: int = 10,
    hits: int = 20,
    llm_s: float = 0.3,
    tool_s: float = 0.001,
    tokens_per_decision: int = 500,
) -> dict[str, float]:
    """An agent whose LLM is a sleep and a token count, against its cached replay."""
    spent = {"tool_s": 0.0, "tokens": 0}

    def screen(i: int) -> str:
        return "form-v1"

    engine = make_engine()

    @engine.function(pre_check=Check(screen, same))
    def click(i: int) -> None:
        start = time.perf_counter()
        time.sleep(tool_s)
        spent["tool_s"] += time.perf_counter() - start

    def agent(task: str) -> None:
        for i in range(steps):
            time.sleep(llm_s)  # the LLM decides the next call
            spent["tokens"] += tokens_per_decision
            click(i)

    engine.set_agent(agent).finalize()

    def measured(run: Callable[[], Any]) -> tuple[float, Any, float, int]:
        spent.update(tool_s=0.0, tokens=0)
        elapsed, result = time_call(run)
        return elapsed, result, spent["tool_s"], spent["tokens"]

    plain_s, _, _, plain_tokens = measured(lambda: agent(TASK))
    miss_s, hit, _, _ = measured(lambda: engine(TASK))
    expect(not hit, "the first run through the engine must be a miss")
    walls, overheads, hit_tokens = [], [], 0
    for _ in range(hits):
        wall, hit, tools, tokens = measured(lambda: engine(TASK))
        expect(hit, "a recorded task in an unchanged environment must hit")
        walls.append(wall)
        overheads.append((wall - tools) / tools)
        hit_tokens += tokens
    hit_s = statistics.median(walls)
    return {
        "plain_s": plain_s,
        "miss_s": miss_s,
        "hit_ms": hit_s * 1e3,
        "hit_over_tools_pct": statistics.median(overheads) * 100,
        "speedup": plain_s / hit_s,
        "tokens_plain": plain_tokens,
        "tokens_per_hit": hit_tokens / hits,
        "tokens_saved_pct": (1 - hit_tokens / hits / plain_tokens) * 100,
    }


# -- 5. cold start (this project only: the original has no persistent store) -------------


def cold_engine(make_engine: MakeEngine, steps: int) -> Any:
    """The engine that builds the cold-start store and the one that reads it: the same
    code, so the tools' fingerprints agree."""

    def screen(task: str, i: int) -> str:
        return "form-v1"

    engine = make_engine()

    @engine.function(pre_check=Check(screen, same))
    def press(task: str, i: int) -> None:
        pass

    def agent(task: str) -> None:
        for i in range(steps):
            press(task, i)

    return engine.set_agent(agent).finalize()


def cold_task(i: int) -> str:
    return f"task {i}"


def build_cold_store(make_engine: MakeEngine, keys: int, steps: int) -> dict[str, float]:
    """Record ``keys`` tasks of ``steps`` steps each: ``keys * steps`` nodes."""
    engine = cold_engine(make_engine, steps)
    start = time.perf_counter()
    for i in range(keys):
        expect(not engine(cold_task(i)), f"{cold_task(i)!r} is new, yet the engine hit")
    return {"build_s": time.perf_counter() - start}


def cold_start(make_engine: MakeEngine, keys: int, steps: int) -> dict[str, float]:
    """From just after ``import muscle_mem`` to the first hit, in a fresh process."""
    start = time.perf_counter()
    engine = cold_engine(make_engine, steps)
    hit = engine(cold_task(keys // 2))
    elapsed = time.perf_counter() - start
    expect(hit, "the cold store must hold the task: rebuild it (run.py --rebuild-cache)")
    return {"first_hit_ms": elapsed * 1e3}


# -- 6. scored checks --------------------------------------------------------------------


def scored_checks(
    make_engine: MakeEngine,
    k: int = 1_000,
    hits: int = 300,
    form: str = "bool",
    dim: int = 384,
    seed: int = 0,
) -> dict[str, float]:
    """Embedding-like environments matched by cosine similarity (threshold 0.9).

    ``form="bool"`` is the README's form, a compare returning a bool, and runs on both;
    ``form="score"`` returns the cosine and lets this project's ``threshold=`` judge
    it (then the best-scoring snapshot wins, so all are scored). A hit's capture is its
    environment plus noise (cosine about 0.98), as real embeddings drift.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    stored = rng.standard_normal((k, dim))
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    env = {"vector": stored[0]}

    def embed(field: str, value: str) -> Any:
        return env["vector"]

    def cosine(current: Any, recorded: Any) -> float:
        return float(current @ recorded / (np.linalg.norm(current) * np.linalg.norm(recorded)))

    def similar(current: Any, recorded: Any) -> bool:
        return cosine(current, recorded) >= 0.9

    check = Check(embed, similar) if form == "bool" else Check(embed, cosine, threshold=0.9)
    engine = form_engine(make_engine, check)

    def set_env(i: int) -> None:
        env["vector"] = stored[i]

    record_s = record_each(engine, set_env, k)
    picks = [int(i) for i in rng.integers(0, k, hits)]
    noisy = stored[picks] + rng.normal(0, 0.01, (hits, dim))

    def set_noisy(n: int) -> None:
        env["vector"] = noisy[n]

    samples, hit_rate = hit_latencies(engine, set_noisy, list(range(hits)))
    return {"record_s": record_s, "hit_us": median_us(samples), "hit_rate": hit_rate}


# -- 7. the demo ---------------------------------------------------------------------------


def demo_days(make_engine: MakeEngine, latency: float) -> dict[str, float]:
    """`muscle-mem demo` on a fresh SQLite file: day 1 (misses, a handoff, hits), then
    day 2 in the same store (all hits), each as the command runs it."""
    import argparse
    import io
    import tempfile

    from muscle_mem.cli.demo import configure
    from muscle_mem.demo import run

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--llm-latency", str(latency)])
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for day in ("day1", "day2"):
            out = io.StringIO()
            seconds, code = time_call(lambda out=out: run(args, f"{folder}/demo.db", out))
            expect(code == 0, f"the demo failed on {day}: {out.getvalue()[-500:]}")
            expect(
                (" hit " in out.getvalue()) and (day == "day1" or " miss " not in out.getvalue()),
                f"{day} did not play as the story says",
            )
            results[f"{day}_s"] = seconds
    return results


WORKLOADS: dict[str, Callable[..., dict[str, float]]] = {
    "many_environments": many_environments,
    "repeated_hits": repeated_hits,
    "step_overhead": step_overhead,
    "end_to_end": end_to_end,
    "build_cold_store": build_cold_store,
    "cold_start": cold_start,
    "scored_checks": scored_checks,
    "demo_days": demo_days,
}
