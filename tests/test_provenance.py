"""Provenance: values the agent read from earlier results are replayed from this run's.

A support desk where a request of one kind comes for many customers: the agent finds the
customer by the params, reads their record, and acts on ids it read there. Each tool's
pre-check looks only at the records its own arguments name, so a path recorded for one
customer passes every check when replayed for another; what keeps replay from acting on
the recorded customer's records is the engine knowing where each id came from.

Runs on every store kind (see conftest).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

import muscle_mem
from muscle_mem import Check, Engine
from muscle_mem.codec import decode, encode
from muscle_mem.errors import DecodeError
from muscle_mem.models import FromResult, Param, Traced
from muscle_mem.portable import export_lines, import_into, read_export
from muscle_mem.provenance import ResultIndex, values_at

CUSTOMERS = {
    "cust_0932": {
        "id": "cust_0932",
        "name": ["Ann", "Lee"],
        "zip": "10001",
        "orders": ["#A1187"],
        "payment_methods": {"card_5531": {"id": "card_5531", "brand": "visa"}},
    },
    "cust_4471": {
        "id": "cust_4471",
        "name": ["Bob", "Kim"],
        "zip": "94110",
        "orders": ["#B2001"],
        "payment_methods": {"card_7702": {"id": "card_7702", "brand": "visa"}},
    },
    "cust_5150": {
        "id": "cust_5150",
        "name": ["Cy", "Ott"],
        "zip": "60601",
        "orders": ["#C3001", "#C3002"],
        "payment_methods": {"card_8800": {"id": "card_8800", "brand": "amex"}},
    },
}


class Desk:
    """The tools, their data, and an agent that exchanges the customer's only order."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.data = copy.deepcopy(CUSTOMERS)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.agent_runs = 0

        # Careful checks for a shared cache read what makes a call safe for whoever it
        # is made for, not the records themselves: those differ by customer.
        def exists(customer_id: str) -> bool:
            return customer_id in self.data

        def exchangeable(order_id: str, payment_method_id: str) -> bool:
            return any(
                order_id in c["orders"] and payment_method_id in c["payment_methods"]
                for c in self.data.values()
            )

        self.online = True

        # The directory being up is all a search needs: it reads no customer's record.
        @engine.function(pre_check=Check(lambda first, last, zip: self.online))
        def find_customer(first: str, last: str, zip: str) -> str | None:
            self.calls.append(("find_customer", (first, last, zip)))
            for customer in self.data.values():
                if customer["name"] == [first, last] and customer["zip"] == zip:
                    return customer["id"]
            return None

        @engine.function(pre_check=Check(exists))
        def get_customer(customer_id: str) -> dict[str, Any]:
            self.calls.append(("get_customer", (customer_id,)))
            return copy.deepcopy(self.data[customer_id])

        @engine.function(pre_check=Check(exchangeable))
        def exchange(order_id: str, payment_method_id: str) -> str:
            self.calls.append(("exchange", (order_id, payment_method_id)))
            return f"exchanged {order_id}"

        self.find_customer, self.get_customer, self.exchange = (
            find_customer,
            get_customer,
            exchange,
        )
        engine.set_agent(self.agent)

    def agent(self, task: str, first: str, last: str, zip: str) -> dict[str, Any]:
        self.agent_runs += 1
        done = muscle_mem.handoff()
        replayed = {s.tool.rpartition(".")[2]: s.result for s in done.steps} if done else {}
        cid = replayed.get("find_customer") or self.find_customer(first, last, zip)
        customer = replayed.get("get_customer") or self.get_customer(customer_id=cid)
        order = customer["orders"][-1]  # the latest order: a choice when there are several
        card = next(iter(customer["payment_methods"]))
        self.exchange(order_id=order, payment_method_id=card)
        return {"customer": cid, "order": order, "card": card, "zip": zip}

    def serve(self, cid: str, **options: Any) -> muscle_mem.Outcome:
        first, last = CUSTOMERS[cid]["name"]
        zip = CUSTOMERS[cid]["zip"]
        params = {"first": first, "last": last, "zip": zip}
        return self.engine("exchange items", first, last, zip, params=params, **options)


def expected_calls(cid: str) -> list[tuple[str, tuple[Any, ...]]]:
    customer = CUSTOMERS[cid]
    return [
        ("find_customer", (*customer["name"], customer["zip"])),
        ("get_customer", (cid,)),
        ("exchange", (customer["orders"][-1], next(iter(customer["payment_methods"])))),
    ]


def test_ids_read_from_results_are_derived_for_another_customer(engine):
    desk = Desk(engine)
    assert desk.serve("cust_0932").status == "miss"
    desk.calls.clear()
    outcome = desk.serve("cust_4471")
    assert outcome.status == "hit"
    assert desk.calls == expected_calls("cust_4471")  # Bob's id, Bob's order, Bob's card
    assert desk.agent_runs == 1
    # The result is the recorded one, with this run's values in it.
    assert outcome.result == {
        "customer": "cust_4471",
        "order": "#B2001",
        "card": "card_7702",
        "zip": "94110",
    }
    assert [s.arguments for s in outcome.steps][1:] == [
        {"customer_id": "cust_4471"},
        {"order_id": "#B2001", "payment_method_id": "card_7702"},
    ]


def test_without_provenance_the_recorded_customers_ids_are_replayed(engine):
    # The risk provenance=False takes: every check passes, since each looks at the
    # records its own arguments name, and those are the recorded customer's.
    engine.provenance = False
    desk = Desk(engine)
    desk.serve("cust_0932")
    desk.calls.clear()
    assert desk.serve("cust_4471").status == "hit"
    assert desk.calls[1:] == [
        ("get_customer", ("cust_0932",)),
        ("exchange", ("#A1187", "card_5531")),
    ]


def test_a_value_the_agent_chose_among_several_must_still_be_there(engine):
    desk = Desk(engine)
    desk.serve("cust_5150")  # Cy has two orders: the agent chose the latest
    recorded = desk.engine.store.tree(
        desk.engine.task_key(
            "exchange items",
            "Cy",
            "Ott",
            "60601",
            params={"first": "Cy", "last": "Ott", "zip": "60601"},
        )
    )
    exchange = next(n for n in recorded if n.step is not None and n.step.tool.endswith("exchange"))
    _, arguments = exchange.template()[0]
    order, card = arguments["order_id"], arguments["payment_method_id"]
    assert order == Traced((FromResult(1, ("orders", None), alone=False),), "#C3002")
    assert card == Traced(
        (
            FromResult(1, ("payment_methods",), keys=True),
            FromResult(1, ("payment_methods", None, "id")),
        )
    )
    desk.calls.clear()
    outcome = desk.serve("cust_4471")  # Bob's orders don't hold Cy's
    assert (outcome.status, outcome.replayed) == ("handoff", 2)
    assert outcome.reason.startswith("step 2: ")
    assert "exchange's order_id is '#C3002', found among the values of step 1: orders[*]" in (
        outcome.reason
    )
    assert "now holds '#B2001'" in outcome.reason
    assert desk.calls == expected_calls("cust_4471")  # the agent made the exchange itself


def test_a_location_that_now_holds_several_values_stops_a_derived_one(engine):
    desk = Desk(engine)
    desk.serve("cust_0932")  # one card, so the card is derived
    desk.data["cust_4471"]["payment_methods"]["card_9000"] = {"id": "card_9000"}
    desk.calls.clear()
    outcome = desk.serve("cust_4471")
    assert outcome.status == "handoff"
    assert "payment_method_id came from step 1: payment_methods.keys()" in outcome.reason
    assert "now holds 2 values" in outcome.reason


def test_a_param_and_a_result_that_agreed_must_still_agree(engine):
    seen = {"zip": "10001"}

    @engine.function()
    def lookup(zip: str) -> dict[str, str]:
        return {"zip": seen["zip"], "region": "east"}

    @engine.function()
    def ship(zip: str) -> None:
        pass

    def agent(task: str) -> None:
        lookup(task)
        ship(task)  # the param, which the lookup's result also holds

    engine.set_agent(agent)
    engine("10001", params={"zip": "10001"})
    seen["zip"] = "94110"
    assert engine("94110", params={"zip": "94110"}).status == "hit"  # they agree
    seen["zip"] = "00000"  # the lookup now says another zip than the param
    outcome = engine("94110", params={"zip": "94110"})
    assert outcome.status == "handoff"
    assert "matched param 'zip' and step 0: zip when recorded, which now disagree" in (
        outcome.reason
    )


def test_every_param_must_be_used_by_the_path_or_equal_its_recorded_value(engine):
    calls = []
    request: dict[str, str] = {}

    @engine.function()
    def greet(name: str) -> None:
        calls.append(name)

    engine.set_agent(lambda task: greet(request["name"]))

    def serve(name: str, locale: str) -> muscle_mem.Outcome:
        request.update(name=name, locale=locale)
        return engine("greet the customer", params=request)  # no param in the task text

    serve("Ann", "en")
    assert serve("Bob", "en").status == "hit"
    # The path has no place for the locale: another locale is another request.
    outcome = serve("Bob", "fr")
    assert (outcome.status, outcome.diverged_at) == ("miss", None)
    assert outcome.reason.startswith("step 0: ")
    assert "param(s) 'locale'" in outcome.reason
    # Recorded for "fr" now, the same path serves both locales.
    assert serve("Cy", "fr").status == "hit" and serve("Di", "en").status == "hit"
    assert calls == ["Ann", "Bob", "Bob", "Cy", "Di"]


def test_a_param_only_the_task_text_and_answer_hold_must_keep_its_value(engine):
    # The agent picks the latest report whatever the quarter: no call is passed the
    # quarter, so the path can't show whether its choices depended on it.
    @engine.function()
    def latest_report() -> str:
        return "report-2025-q3"

    engine.set_agent(lambda task: f"{latest_report()} for {task.split()[-1]}")
    engine("summarize Q3", params={"quarter": "Q3"})
    assert engine("summarize Q3", params={"quarter": "Q3"}).status == "hit"
    outcome = engine("summarize Q4", params={"quarter": "Q4"})
    assert outcome.status == "miss" and "param(s) 'quarter'" in outcome.reason


def test_the_agent_carrying_on_from_a_handoff_reads_the_replayed_results(engine):
    desk = Desk(engine)
    desk.serve("cust_5150")  # the order was a choice among two
    outcome = desk.serve("cust_4471")  # handed over at the exchange
    assert outcome.status == "handoff"
    # Bob's branch hangs below the replayed steps and refers to their results: Di, with
    # one order like Bob, takes it with her own ids.
    CUSTOMERS_DI = copy.deepcopy(CUSTOMERS["cust_4471"])
    CUSTOMERS_DI.update(id="cust_7000", name=["Di", "Ng"], zip="30301", orders=["#D4001"])
    CUSTOMERS_DI["payment_methods"] = {"card_4242": {"id": "card_4242"}}
    desk.data["cust_7000"] = CUSTOMERS_DI
    desk.calls.clear()
    params = {"first": "Di", "last": "Ng", "zip": "30301"}
    outcome = engine("exchange items", "Di", "Ng", "30301", params=params)
    assert outcome.status == "hit"
    assert desk.calls[1:] == [
        ("get_customer", ("cust_7000",)),
        ("exchange", ("#D4001", "card_4242")),
    ]


def test_calls_made_in_parallel_are_not_traced_to_each_other(engine):
    both_started = threading.Barrier(2, timeout=10)

    @engine.function()
    def fetch(name: str) -> str:
        both_started.wait()  # neither returns before the other has started
        return f"{name}-value"

    def agent(task: str) -> None:
        threads = [threading.Thread(target=fetch, args=(n,)) for n in ("alpha", "alpha-value")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    engine.set_agent(agent)
    engine("t")
    tree = engine.store.tree(engine.task_key("t"))
    # "alpha-value" is alpha's result, but fetched at the same time: an own choice.
    templates = [n.template()[0] for n in tree if n.step is not None]
    assert all(type(args[0]) is str for args, _ in templates)


def test_words_replay_only_while_the_result_still_holds_them(engine):
    state = {"status": "pending"}

    @engine.function()
    def get_order() -> dict[str, str]:
        return {"status": state["status"], "id": "#A1"}

    @engine.function()
    def set_status(order_id: str, status: str) -> None:
        pass

    def agent(task: str) -> None:
        order = get_order()
        set_status(order["id"], "pending")  # its own standard, the order had it already

    engine.set_agent(agent)
    engine("t")
    assert engine("t").status == "hit"
    state["status"] = "shipped"  # derived, "shipped" would be a call the agent never makes
    outcome = engine("t")
    assert outcome.status == "handoff"
    assert "matched the agent's own choice and step 0: status" in outcome.reason


def test_a_result_that_cannot_be_rebuilt_hands_the_answer_to_the_agent(engine):
    data = {"id": "cust_0932", "tier": "gold-2024"}

    @engine.function()
    def lookup() -> dict[str, str]:
        return dict(data)

    answers = []

    def agent(task: str) -> str:
        answers.append(task)
        return lookup().get("tier", "no tier")

    engine.set_agent(agent)
    engine("t")
    data["tier"] = "silver-2025"
    hit = engine("t")
    assert (hit.status, hit.result) == ("hit", "silver-2025")  # derived
    del data["tier"]
    data["level"] = "x"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.result) == ("handoff", 1, "no tier")
    assert "the recorded result came from step 0: tier" in outcome.reason
    assert answers == ["t", "t"]


def test_references_survive_export_and_import(engine, tmp_path):
    desk = Desk(engine)
    desk.serve("cust_0932")
    other = Engine()
    import_into(other.store, read_export(export_lines(engine.store)))
    clone = Desk(other)
    clone.serve("cust_4471")
    assert clone.calls == expected_calls("cust_4471") and clone.agent_runs == 0


# -- the parts ----------------------------------------------------------------------


def test_a_result_index_generalises_lists_and_records_keyed_by_id():
    result = {
        "id": "cust_1",
        "orders": [{"id": "#A1", "total": 12.5}, {"id": "#A2", "total": 30.25}],
        "payment_methods": {"card_1": {"id": "card_1"}},
        "address": {"city": "Boston"},
    }
    index = ResultIndex(result)
    assert index.sources("#A1", 0) == [FromResult(0, ("orders", None, "id"), alone=False)]
    assert index.sources("card_1", 0) == [
        FromResult(0, ("payment_methods",), keys=True),
        FromResult(0, ("payment_methods", None, "id")),
    ]
    assert index.sources("Boston", 2) == [FromResult(2, ("address", "city"))]
    assert index.sources(12.5, 0) == [FromResult(0, ("orders", None, "total"), alone=False)]
    assert values_at(result, FromResult(0, ("orders", None, "id"))) == ["#A1", "#A2"]
    assert values_at(result, FromResult(0, ("payment_methods",), keys=True)) == ["card_1"]
    assert values_at(result, FromResult(0, ("nowhere",))) == []


@pytest.mark.parametrize(
    ("value", "traced"),
    [("abc", True), ("ab", False), ("   ", False), (1000, True), (999, False), (True, False),
     (2.5, True), (2.0, False), (None, False)],
)  # fmt: skip
def test_only_specific_values_are_traced(value, traced):
    assert bool(ResultIndex({"v": value}).sources(value, 0)) is traced


def test_traced_values_round_trip_through_the_codec():
    traced = Traced((Param("zip"), FromResult(1, ("orders", None, "id"), False, False)), "#A1")
    assert decode(encode(((traced,), {}))) == ((traced,), {})
    assert decode(encode(Traced((FromResult(0),)))) == Traced((FromResult(0),))
    for bad in (b'{"src": []}', b'{"src": [{"at": [0, "x", false, true]}]}', b'{"at": [-1]}'):
        with pytest.raises(DecodeError):
            decode(bad)


def test_show_prints_references_in_place_of_values(engine, tmp_path, capsys):
    from muscle_mem.cli import main

    path = tmp_path / "c.db"
    with Engine(store=f"sqlite:///{path}") as on_disk:
        Desk(on_disk).serve("cust_5150")
        key = on_disk.task_key(
            "exchange items",
            "Cy",
            "Ott",
            "60601",
            params={"first": "Cy", "last": "Ott", "zip": "60601"},
        )
    assert main(["show", key, "--store", f"sqlite:///{path}"]) == 0
    out = capsys.readouterr().out
    assert "customer_id=⟨step 0⟩" in out
    assert "order_id='#C3002' ⟨step 1: orders[*]⟩" in out
    assert (
        "payment_method_id=⟨step 1: payment_methods.keys() = step 1: payment_methods[*].id⟩" in out
    )
    assert "find_customer({first}, {last}, {zip})" in out
