"""The markdown table: medians, ratios, and each of the issue's targets met or missed."""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field

from plan import Case

# (case key, implementation) -> medians of each metric, or why there are none
Results = dict[tuple[str, str], "dict[str, float] | str"]

HEADER = ("Workload", "Measure", "Ours", "Original", "Ours vs original", "Target", "Verdict")
FLAT_KIB = 64  # "flat": less than this over all the hits (about 6 bytes a hit at 10,000)
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}  # timing metrics are named value_<unit>


def duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e6:.3g} µs"


def speed(ours: float | None, original: float | None) -> str:
    """How two durations compare, from our side."""
    if not ours or not original:
        return ""
    if max(ours, original) / min(ours, original) < 1.05:
        return "about the same"
    if ours <= original:
        return f"{original / ours:.3g}x faster"
    return f"{ours / original:.3g}x slower"


@dataclass
class Section:
    """The rows of one workload. A row's verdict is "—" when its target is to report."""

    name: str
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add(
        self,
        measure: str,
        ours: str,
        original: str = "",
        ratio: str = "",
        target: str = "report",
        met: bool | None = None,
    ) -> None:
        if target == "report":
            verdict = "—"
        else:
            verdict = "n/a" if met is None else ("met" if met else "**missed**")
        self.rows.append((self.name, measure, ours, original, ratio, target, verdict))


@dataclass
class Report:
    plan: dict[str, Case]
    results: Results

    # -- reading results ---------------------------------------------------------------

    def get(self, key: str, impl: str, metric: str) -> float | None:
        found = self.results.get((key, impl))
        return found.get(metric) if isinstance(found, dict) else None

    def seconds(self, key: str, impl: str, metric: str) -> float | None:
        value = self.get(key, impl, metric)
        return None if value is None else value * UNITS[metric.rsplit("_", 1)[1]]

    def both(self, key: str, metric: str) -> tuple[float | None, float | None]:
        return self.seconds(key, "ours", metric), self.seconds(key, "original", metric)

    def show(self, key: str, impl: str, metric: str, fmt: Callable[[float], str] = str) -> str:
        """The formatted median; else why there is none ("" where the case never runs)."""
        if key not in self.plan or impl not in self.plan[key].impls:
            return ""
        found = self.results.get((key, impl))
        if isinstance(found, str):
            return found
        if found is None or metric not in found:
            return "not run"
        value = found[metric]
        if fmt is str and metric.rsplit("_", 1)[1] in UNITS:
            return duration(value * UNITS[metric.rsplit("_", 1)[1]])
        return fmt(value)

    def span(self, key: str, impl: str, metric: str, unit: str = "") -> str:
        """A probed value after the first hit and after the last, as "a → b"."""
        first, last = self.get(key, impl, f"first_{metric}"), self.get(key, impl, f"last_{metric}")
        if first is None or last is None:
            return self.show(key, impl, f"first_{metric}")
        return f"{first:,.0f}{unit} → {last:,.0f}{unit}"

    def growth(self, key: str, impl: str, metric: str, since: str = "first") -> float | None:
        first, last = (
            self.get(key, impl, f"{since}_{metric}"),
            self.get(key, impl, f"last_{metric}"),
        )
        return None if first is None or last is None else last - first

    def param(self, key: str, name: str) -> int:
        return self.plan[key].params[name]

    # -- the table -----------------------------------------------------------------------

    def sections(self) -> list[Section]:
        return [
            self.many_environments(),
            self.repeated_hits(),
            self.step_overhead(),
            self.end_to_end(),
            self.cold_start(),
            self.scored_checks(),
            self.demo(),
        ]

    def markdown(self) -> str:
        rows = [row for section in self.sections() for row in section.rows]
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)

    def many_environments(self) -> Section:
        section = Section("1. Many environments")
        small, mid, large = (self.param(k, "k") for k in ("env_small", "env_mid", "env_large"))
        for key, k in (("env_small", small), ("env_mid", mid)):
            ours, original = self.both(key, "hit_us")
            target, met = "report", None
            if key == "env_mid":
                target, met = "≥ 50x faster", original / ours >= 50 if ours and original else None
            section.add(
                f"hit latency, K={k:,}, equality compare",
                self.show(key, "ours", "hit_us"),
                self.show(key, "original", "hit_us"),
                speed(ours, original),
                target,
                met,
            )
        before, after = (
            self.seconds("env_small", "ours", "hit_us"),
            self.seconds("env_large", "ours", "hit_us"),
        )
        hit_rate = self.get("env_large", "ours", "hit_rate")
        ours = " → ".join(self.show(k, "ours", "hit_us") for k in ("env_small", "env_large"))
        if hit_rate is not None and hit_rate < 1:
            ours += f" (only {hit_rate:.0%} of runs hit: the rest missed)"
        grew = after / before if before and after else None
        section.add(
            f"hit latency growth, K={small:,} → {large:,}",
            ours,
            "not run (see the recording below)",
            f"x{grew:.2f}" if grew else "",
            "< 1.5x",
            grew < 1.5 and hit_rate == 1 if grew else None,
        )
        ours_s, original_s = self.both("env_mid", "record_s")
        section.add(
            f"record K={mid:,}, equality compare (quadratic)",
            self.show("env_mid", "ours", "record_s"),
            self.show("env_mid", "original", "record_s"),
            speed(ours_s, original_s),
            "smaller constant",
            ours_s < original_s if ours_s and original_s else None,
        )
        section.add(
            f"record K={large:,}, equality compare (quadratic)",
            self.show("env_large", "ours", "record_s"),
            self.original_at_large_k(mid, large),
        )
        per_env = [
            self.get(k, "ours", "record_per_env_us") for k in ("env_mid_hashed", "env_large_hashed")
        ]
        grew = per_env[1] / per_env[0] if per_env[0] and per_env[1] else None
        section.add(
            f"record K={mid:,} → {large:,}, `compare=None` (ours only)",
            f"{self.show('env_mid_hashed', 'ours', 'record_s')} → "
            f"{self.show('env_large_hashed', 'ours', 'record_s')}"
            + (f" (per environment x{grew:.2f})" if grew else ""),
            target="linear (per environment < 1.5x)",
            met=grew < 1.5 if grew else None,
        )
        return section

    def original_at_large_k(self, mid: int, large: int) -> str:
        """The original is not run at the largest K; what recording alone would take."""
        recorded = self.seconds("env_mid", "original", "record_s")
        if recorded is None:
            return "not run"
        estimate = recorded * (large / mid) ** 2  # each miss tries every stored trajectory
        return f"not run (recording alone ≈ {duration(estimate)})"

    def repeated_hits(self) -> Section:
        section = Section(f"2. Repeated hits ({self.param('hits_memory', 'hits'):,})")
        for key, store in (("hits_memory", "memory"), ("hits_sqlite", "SQLite")):

            def grew(impl: str, metric: str, key: str = key, since: str = "first") -> str:
                value = self.growth(key, impl, metric, since)
                return f"{value:+,.0f} KiB" if value is not None else self.show(key, impl, metric)

            for since, label in (("first", "first hit"), ("window", "1,000th hit")):
                heap = self.growth(key, "ours", "py_kib", since)
                section.add(
                    f"Python heap growth, {label} → last ({store})",
                    grew("ours", "py_kib", since=since),
                    grew("original", "py_kib", since=since),
                    target=f"flat (< {FLAT_KIB} KiB)",
                    met=heap < FLAT_KIB if heap is not None else None,
                )
            section.add(
                f"RSS growth, first hit → last ({store})",
                grew("ours", "rss_kib"),
                grew("original", "rss_kib"),
            )
            ours = (
                f"nodes {self.span(key, 'ours', 'nodes')}, "
                f"snapshots {self.span(key, 'ours', 'snapshots')}, "
                f"run log {self.span(key, 'ours', 'run_log')}"
            )
            if store == "SQLite":
                ours += f", file {self.span(key, 'ours', 'file_kib', ' KiB')}"
            kept = [self.growth(key, "ours", m) for m in ("nodes", "snapshots")]
            section.add(
                f"store size, first hit → last ({store})",
                ours,
                f"trajectories {self.span(key, 'original', 'trajectories')}"
                if "original" in self.plan[key].impls
                else "",
                target="flat (nodes, snapshots)",
                met=kept == [0, 0] if None not in kept else None,
            )
        return section

    def fit(self, store: str, impl: str) -> tuple[float, float] | None:
        """The engine's overhead as (per run, per step) seconds, from 5 and 20 steps."""
        overhead = []
        for steps in (5, 20):
            hit, loop = (
                self.seconds(f"overhead_{store}_{steps}", impl, m) for m in ("hit_us", "loop_us")
            )
            if hit is None or loop is None:
                return None
            overhead.append(hit - loop)
        per_step = (overhead[1] - overhead[0]) / 15
        return overhead[0] - 5 * per_step, per_step

    def fitted(self, store: str, impl: str) -> str:
        found = self.fit(store, impl)
        if found is None:
            return self.show(f"overhead_{store}_5", impl, "hit_us")
        return f"{duration(found[0])} per run + {duration(found[1])} per step"

    def step_overhead(self) -> Section:
        section = Section("3. Per-step overhead")
        ours, original = self.both("overhead_memory_10", "overhead_per_step_us")
        section.add(
            "memory, 10 steps: (hit - plain loop) / steps",
            self.show("overhead_memory_10", "ours", "overhead_per_step_us"),
            self.show("overhead_memory_10", "original", "overhead_per_step_us"),
            speed(ours, original),
            "≤ 10 µs",
            ours <= 10e-6 if ours is not None else None,
        )
        section.add(
            "memory, fitted on 5 and 20 steps",
            self.fitted("memory", "ours"),
            self.fitted("memory", "original"),
        )
        sqlite = self.fit("sqlite", "ours")
        section.add(
            "SQLite, fitted on 5 and 20 steps",
            self.fitted("sqlite", "ours"),
            target="≤ 0.3 ms per run + 10 µs per step",
            met=sqlite[0] <= 0.3e-3 and sqlite[1] <= 10e-6 if sqlite else None,
        )
        section.add("PostgreSQL, fitted on 5 and 20 steps", self.fitted("postgres", "ours"))
        return section

    def end_to_end(self) -> Section:
        params = self.plan["e2e"].params
        section = Section(f"4. End to end ({params['llm_s'] * 1e3:.0f} ms a decision, 10 steps)")

        def percent(value: float) -> str:
            return f"{value:+.1f}%"

        def times(value: float) -> str:
            return f"{value:.1f}x"

        def saved(impl: str) -> str:
            plain, per_hit = (self.get("e2e", impl, m) for m in ("tokens_plain", "tokens_per_hit"))
            if plain is None or per_hit is None:
                return self.show("e2e", impl, "tokens_plain")
            return f"{plain - per_hit:,.0f} of {plain:,.0f}"

        over = self.get("e2e", "ours", "hit_over_tools_pct")
        section.add(
            "hit wall time over the tools' own time",
            self.show("e2e", "ours", "hit_over_tools_pct", percent),
            self.show("e2e", "original", "hit_over_tools_pct", percent),
            target="within 5%",
            met=over <= 5 if over is not None else None,
        )
        section.add(
            "hit wall time",
            self.show("e2e", "ours", "hit_ms"),
            self.show("e2e", "original", "hit_ms"),
            speed(*self.both("e2e", "hit_ms")),
        )
        section.add(
            "speed-up over the plain agent",
            self.show("e2e", "ours", "speedup", times),
            self.show("e2e", "original", "speedup", times),
        )
        section.add("tokens saved per hit", saved("ours"), saved("original"))
        return section

    def cold_start(self) -> Section:
        section = Section("5. Cold start")
        keys, steps = self.param("cold", "keys"), self.param("cold", "steps")
        first = self.seconds("cold", "ours", "first_hit_ms")
        section.add(
            f"SQLite, {keys * steps:,} nodes over {keys:,} task keys: import → first hit",
            self.show("cold", "ours", "first_hit_ms"),
            target="< 50 ms",
            met=first < 0.05 if first is not None else None,
        )
        return section

    def demo(self) -> Section:
        latency = self.plan["demo"].params["latency"]
        section = Section(f"7. `muscle-mem demo` ({latency:g} s per simulated LLM call)")
        day1 = self.seconds("demo", "ours", "day1_s")
        section.add(
            "day 1: misses, a handoff, hits (fresh SQLite file)",
            self.show("demo", "ours", "day1_s"),
            ratio=f"{30 / day1:.1f}x under the limit" if day1 else "",
            target="< 30 s",
            met=day1 < 30 if day1 is not None else None,
        )
        section.add(
            "day 2, a new session: all hits",
            self.show("demo", "ours", "day2_s"),
        )
        return section

    def scored_checks(self) -> Section:
        section = Section(f"6. Scored checks ({self.param('scored_bool', 'k'):,} environments)")
        section.add(
            "hit latency, compare returns `cos >= 0.9`",
            self.show("scored_bool", "ours", "hit_us"),
            self.show("scored_bool", "original", "hit_us"),
            speed(*self.both("scored_bool", "hit_us")),
        )
        section.add(
            "hit latency, compare returns the cosine, `threshold=0.9` (ours only)",
            self.show("scored_score", "ours", "hit_us"),
        )
        section.add(
            "record all, compare returns `cos >= 0.9`",
            self.show("scored_bool", "ours", "record_s"),
            self.show("scored_bool", "original", "record_s"),
            speed(*self.both("scored_bool", "record_s")),
        )
        return section


# -- ours against a baseline: this project at an earlier commit --------------------------

WORSE_BY = 0.10  # how much worse than the baseline a hit-path figure may get


@dataclass(frozen=True)
class Figure:
    """A metric a workload reports, as one row of the baseline table.

    ``kind`` says how it is judged: "hit" (a hit's latency or overhead: missed when more
    than WORSE_BY worse than the baseline), "same" (an outcome a refactor must not
    change: missed when it differs) or "report". With ``since`` the row is a growth:
    the metric's ``last_`` value minus its ``since`` one.
    """

    label: str
    metric: str
    kind: str = "report"
    since: str | None = None


HIT_LATENCY = [
    Figure("hit latency", "hit_us", "hit"),
    Figure("share of runs that hit", "hit_rate", "same"),
    Figure("record all environments", "record_s"),
]
FIGURES: dict[str, list[Figure]] = {
    "many_environments": HIT_LATENCY,
    "scored_checks": HIT_LATENCY,
    "repeated_hits": [
        # The window is the 1,000th hit, or the middle one in shorter runs.
        Figure("Python heap growth, window → last hit", "py_kib", since="window"),
        Figure("RSS growth, first hit → last", "rss_kib", since="first"),
        Figure("nodes after the last hit", "last_nodes", "same"),
        Figure("snapshots after the last hit", "last_snapshots", "same"),
        Figure("run-log rows after the last hit", "last_run_log", "same"),
    ],
    "step_overhead": [
        Figure("(hit - plain loop) / steps", "overhead_per_step_us", "hit"),
        Figure("hit latency", "hit_us", "hit"),
        Figure("plain loop (the reference)", "loop_us"),
    ],
    "end_to_end": [
        Figure("hit wall time", "hit_ms", "hit"),
        # A percent or two over sleeping tools: its jitter, not the engine, moves it.
        Figure("hit wall time over the tools' own time", "hit_over_tools_pct"),
        Figure("tokens per hit", "tokens_per_hit", "same"),
        Figure("miss wall time", "miss_s"),
    ],
    "cold_start": [Figure("import → first hit", "first_hit_ms", "hit")],
    "demo_days": [Figure("day 1", "day1_s"), Figure("day 2: all hits", "day2_s")],
}


def formatted(metric: str, value: float, signed: bool = False) -> str:
    """A value in its metric's unit (told by the name's suffix)."""
    suffix = metric.rsplit("_", 1)[-1]
    if suffix in UNITS:
        text = duration(abs(value) * UNITS[suffix])
        return ("-" if value < 0 else "+" if signed else "") + text
    if suffix == "pct":
        return f"{value:+.1f}%"
    if metric == "hit_rate":
        return f"{value:.0%}"
    number = f"{value:+,.0f}" if signed else f"{value:,.6g}"
    return f"{number} KiB" if suffix == "kib" else number


@dataclass
class Versus:
    """Every figure both sides measured, ours against the baseline's, as a ratio."""

    plan: dict[str, Case]
    results: Results
    label: str  # the baseline's column: "baseline <short sha>"

    def value(self, key: str, impl: str, figure: Figure) -> float | str:
        """The figure's median; else why there is none."""
        found = self.results.get((key, impl), "not run")
        if isinstance(found, str):
            return found
        if figure.since is None:
            return found.get(figure.metric, "not run")
        since = found.get(f"{figure.since}_{figure.metric}")
        last = found.get(f"last_{figure.metric}")
        return "not run" if since is None or last is None else last - since

    def row(self, case: Case, figure: Figure) -> tuple[str, ...]:
        params = ", ".join(f"{name}={value}" for name, value in case.params.items())
        ours, base = (self.value(case.key, impl, figure) for impl in ("ours", "baseline"))
        shown = [
            formatted(figure.metric, v, signed=figure.since is not None)
            if isinstance(v, float | int)
            else v
            for v in (ours, base)
        ]
        compared, target, verdict = "", "report", "—"
        if figure.kind == "hit":
            target, verdict = f"≤ {1 + WORSE_BY:.2f}x", "n/a"
        elif figure.kind == "same":
            target, verdict = "same as the baseline", "n/a"
        if isinstance(ours, float | int) and isinstance(base, float | int):
            if figure.since is not None or figure.metric.endswith("_pct"):
                # Growths and percentages sit near zero: a ratio of them says nothing.
                difference = formatted(figure.metric, ours - base, signed=True)
                compared = difference.replace("%", " points")
            elif base > 0 and ours > 0 and figure.kind != "same":
                compared = f"{ours / base:.2f}x"
            if figure.kind == "hit":
                verdict = "met" if ours <= base * (1 + WORSE_BY) else "**missed**"
            elif figure.kind == "same":
                verdict = "met" if math.isclose(ours, base) else "**missed**"
        return (f"`{case.key}` ({params})", figure.label, *shown, compared, target, verdict)

    def figures(self) -> list[tuple[Case, Figure]]:
        ran = {key for key, _ in self.results}
        return [
            (case, figure)
            for case in self.plan.values()
            if case.key in ran
            for figure in FIGURES[case.workload]
        ]

    def markdown(self) -> str:
        header = ("Case", "Measure", "Ours", self.label.capitalize(), "Ours / baseline")
        header += ("Target", "Verdict")
        rows = [(case, figure, self.row(case, figure)) for case, figure in self.figures()]
        judged = [(case, figure, row) for case, figure, row in rows if figure.kind == "hit"]
        missed = [
            f"`{case.key}` {figure.label}" for case, figure, row in judged if row[-1] != "met"
        ]
        lines = [
            f"Ours against {self.label}; a ratio above 1 means ours takes longer. "
            f"Hit-path figures (a hit's latency or overhead): {len(judged)}, of which "
            f"{len(missed)} more than {WORSE_BY:.0%} worse than the baseline or not measured"
            + (f": {'; '.join(missed)}." if missed else "."),
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for _, _, row in rows
        ]
        return "\n".join(lines)


def machine(about: dict[str, dict], other: str = "original") -> list[str]:
    """Where and when the numbers were taken, and what ran, as markdown list items;
    ``other`` is the implementation ours is compared with."""
    cpu, memory = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
        with open("/proc/meminfo") as info:
            total_kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
        memory = f", {total_kib / 2**20:.0f} GiB memory"
    except (OSError, StopIteration):
        pass  # not Linux: the table is still worth printing
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores{memory}, Linux {platform.release()}",
        f"- Python {about['ours']['python']}; this project: muscle-mem {about['ours']['version']}; "
        f"{other}: muscle-mem {about[other]['version']}",
        f"- Date: {now}",
    ]
