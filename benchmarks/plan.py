"""What run.py runs: every workload with its parameters, for a full or a quick run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

BOTH = ("ours", "original")
OURS = ("ours",)

# The cold-start store: what the engine writes for COLD_KEYS tasks of COLD_STEPS steps.
COLD_KEYS, COLD_STEPS = 10_000, 10
COLD_STORE = "cold-store"  # stands for a fresh copy of the cached store, made per run


@dataclass(frozen=True)
class Case:
    """One workload run with fixed parameters, on the given implementations.

    ``max_rounds`` caps the rounds of a case too slow to repeat every round; its
    in-process median over many runs already makes it stable.
    """

    key: str
    workload: str
    params: dict[str, Any] = field(default_factory=dict)
    store: str = "memory"
    impls: tuple[str, ...] = BOTH
    max_rounds: int | None = None


def cases(quick: bool = False, baseline: bool = False) -> list[Case]:
    """The full plan, or a smaller one (``quick``) that only shows everything runs.

    With ``baseline`` the other side is this project at another commit, which can do
    all ours can: every case runs on "ours" and "baseline".
    """

    def size(full: int, small: int) -> int:
        return small if quick else full

    k_small, k_mid, k_large = size(200, 50), size(2_000, 200), size(20_000, 1_000)
    repeats = size(1_000, 100)
    plan = [
        Case("env_small", "many_environments", {"k": k_small}),
        Case("env_mid", "many_environments", {"k": k_mid}),
        # Recording 20,000 environments would take the original about ten minutes a round
        # (a miss tries every trajectory): it is not run there; the table extrapolates.
        # A step remembers 10,000 environments by default; K beyond that needs a store
        # configured to keep them all, as a user with that many would configure it.
        Case(
            "env_large",
            "many_environments",
            {"k": k_large},
            store=f"memory://?snapshot_cap={k_large}",
            impls=OURS,
            max_rounds=2,
        ),
        Case("env_mid_hashed", "many_environments", {"k": k_mid, "compare": "none"}, impls=OURS),
        Case(
            "env_large_hashed",
            "many_environments",
            {"k": k_large, "compare": "none"},
            store=f"memory://?snapshot_cap={k_large}",
            impls=OURS,
        ),
        Case("hits_memory", "repeated_hits", {"hits": size(10_000, 500)}),
        Case("hits_sqlite", "repeated_hits", {"hits": size(10_000, 500)}, "sqlite", OURS),
        Case(
            "e2e",
            "end_to_end",
            {"hits": size(20, 3), "llm_s": 0.02 if quick else 0.3},
        ),
        Case(
            "cold",
            "cold_start",
            {"keys": size(COLD_KEYS, 500), "steps": COLD_STEPS},
            COLD_STORE,
            OURS,
        ),
        Case("scored_bool", "scored_checks", {"k": size(1_000, 100), "hits": size(100, 50)}),
        Case(
            "scored_score",
            "scored_checks",
            {"k": size(1_000, 100), "hits": size(100, 50), "form": "score"},
            impls=OURS,
        ),
    ]
    # The demo at its default settings: what a newcomer waits for (ours only: it is ours).
    plan.append(Case("demo", "demo_days", {"latency": 0.02 if quick else 0.3}, impls=OURS))
    for steps in (5, 10, 20):
        plan.append(
            Case(f"overhead_memory_{steps}", "step_overhead", {"steps": steps, "repeats": repeats})
        )
    for store in ("sqlite", "postgres"):
        for steps in (5, 20):
            plan.append(
                Case(
                    f"overhead_{store}_{steps}",
                    "step_overhead",
                    {"steps": steps, "repeats": repeats},
                    store,
                    OURS,
                )
            )
    if baseline:
        return [replace(case, impls=("ours", "baseline")) for case in plan]
    return plan
