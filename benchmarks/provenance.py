"""Provenance: serving other customers from a cache recorded for some (issue #14).

    python3 benchmarks/provenance.py                 # default size, prints markdown
    python3 benchmarks/provenance.py --customers 100 --seed 7
    python3 benchmarks/provenance.py --write         # into docs/benchmarks.md

A support desk with hundreds of customers (seeded, deterministic) and four kinds of
request. Requests are recorded for some customers, then served for the others and
repeated for some recorded ones. Every served request's tool calls (what replay ran,
then what the agent did after a handoff) are compared with what the agent alone makes
for that request on an identical copy of the data: a call at a position where the agent
alone makes another call, or none, is a WRONG CALL.

Written against the public API only (``Engine``, ``Check``, ``handoff``, ``Outcome``
and tools made with ``engine.function``), so it runs on any build: ``provenance=False``
is passed only where ``Engine`` accepts it, and the report says which engine ran.

The desk
--------
Tools, each with a pre-check that captures the state of the records its own arguments
name (the precondition the agent relies on), never which customer they belong to:

    find_customer(first_name, last_name, zip) -> "cust_01234"   check: how many match
    get_customer(customer_id) -> record      check: the customer exists
    list_orders(customer_id) -> {order_id: order}      check: the account's status
    get_order(order_id) -> order             check: the order exists, its account's status
    get_product(product_id) -> product with {item_id: variant}   check: the product record
    modify_address(customer_id, address)     check: the account's status
    cancel_pending_order(order_id, reason)   check: the order's status
    return_items(order_id, item_ids, payment_method_id)
        check: the order's status, whether it holds the items, whether the card is its owner's
    exchange_items(order_id, item_ids, new_item_ids, payment_method_id)
        check: the same, and whether the new items are available
    add_order_note(order_id, note)           check: the order's status
    transfer_to_human(customer_id, summary)  check: the account's status

That is the trap the issue describes: served for another customer, a literal replay of
``get_customer("cust_<recorded>")`` passes its check, because the recorded customer's
records have not changed.

The agent (scripted, deterministic: "the agent alone")
------------------------------------------------------
Every kind starts with ``find_customer`` from the params and ``get_customer`` on the
id it returned (DERIVED: the only value of a result); a locked account is handed to a
human (``transfer_to_human``). Then:

- update address (params: name, zip, address1, city, new_zip): ``modify_address`` with
  the id from ``find_customer`` and the new address from the params. Nothing is chosen.
- cancel order (params: name, zip, order_id, reason): ``get_order(order_id)``; if the
  order is pending, ``cancel_pending_order``, else ``add_order_note`` says why not.
  The order id is a param that also appears in the customer's ``orders`` list.
- return item (params: name, zip, order_id, product): ``get_order``; if delivered,
  ``return_items`` of the item whose name is the product (CHOSEN among the order's items
  by a param, unless it is the order's only item) to the order's original payment method
  (DERIVED from ``payment_history``), else ``add_order_note``.
- exchange item (params: name, zip, product, color): ``list_orders``; the agent CHOOSES
  the most recent delivered order holding the product and that item, ``get_product`` of
  its product id (chosen among the customer's items), the available variant in the
  requested color (CHOSEN among the product's variants by a param) and the payment
  method (CHOSEN among the customer's by kind: gift card, then credit card, then
  PayPal), then ``exchange_items``; with no such variant it answers without a call.

Requests are about things the customers have (the order they name is theirs; the item
they want to return or exchange is in it); some are refused by the data: locked accounts,
orders no longer pending or not yet delivered, colours out of stock. Item ids are shared
(they name a product's variant, as in a catalogue), so another customer's data can hold
the recorded item while naming another order.

Mutation: every request, recorded or served, runs on a fresh deep copy of the data, and
the agent alone on another, so an exchange never leaks into another request.

Two task forms: ``kind`` runs ``engine("exchange item", params=...)``, as in the issue (the
agent reads the request from the desk); ``message`` passes the customer's message, which
holds every param, as the task (so every param is also in the task key).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import muscle_mem
from muscle_mem import Check, Engine

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Provenance: serving other customers (issue #14)"
BEGIN = "<!-- begin: provenance -->"
END = "<!-- end: provenance -->"

KINDS = ("update address", "cancel order", "return item", "exchange item")
FORMS = ("kind", "message")

# Disjoint pools: a param value never equals another param's value or stands as a whole
# word inside another (the engine templates params inside strings), so what the engine
# sees in a request is the request, not a coincidence of the generator.
FIRST = (
    "Aaliyah",
    "Beatrix",
    "Caspian",
    "Delphine",
    "Ezra",
    "Fatima",
    "Gideon",
    "Harriet",
    "Ingrid",
    "Jasper",
    "Kamala",
    "Leopold",
    "Marisol",
    "Nikolai",
    "Ottilie",
    "Percival",
    "Quincy",
    "Rosalind",
    "Soren",
    "Tabitha",
    "Ulysses",
    "Valentina",
    "Wendell",
    "Xiomara",
    "Yusuf",
    "Zinnia",
    "Anselm",
    "Bronwyn",
    "Cosimo",
    "Dagny",
)
LAST = (
    "Abernathy",
    "Blackwood",
    "Castellanos",
    "Drummond",
    "Eriksen",
    "Fairweather",
    "Gallagher",
    "Holloway",
    "Ishikawa",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Nakamura",
    "Okonkwo",
    "Pemberton",
    "Quintero",
    "Rasmussen",
    "Szymanski",
    "Thornbury",
    "Underhill",
    "Vasquez",
    "Whitfield",
    "Yamamoto",
)
CITIES = (
    "Ashford",
    "Brightwater",
    "Coldspring",
    "Dunmore",
    "Elmhurst",
    "Fairhaven",
    "Glenrock",
    "Hollis",
    "Ivybridge",
    "Juniper Falls",
)
STREETS = ("Maple Avenue", "Harbor Lane", "Orchard Road", "Quarry Street", "Willow Court")
PRODUCTS = ("water bottle", "t-shirt", "backpack", "headphones", "desk lamp")
COLORS = ("black", "blue", "red", "green")
REASONS = ("no longer needed", "ordered by mistake")
ORDER_STATUSES = (("pending", 3), ("processed", 1), ("delivered", 5), ("cancelled", 1))
CANCEL_REFUSED = "asked to cancel; not pending, so not cancelled"
RETURN_REFUSED = "asked to return an item; not delivered, so not returned"
# The agent pays an exchange's difference with a gift card first, then a card, then PayPal.
PAYMENT_PRIORITY = {"gift_card": 0, "credit_card": 1, "paypal": 2}


def expect(condition: Any, message: str) -> None:
    """Fail loudly: a figure measured on a harness that misbehaves is worthless."""
    if not condition:
        raise RuntimeError(message)


# -- the data ----------------------------------------------------------------------------


def make_data(customers: int, seed: int) -> dict[str, Any]:
    """``customers`` customers with their orders and cards, and the product catalogue."""
    rng = random.Random(seed)
    expect(customers <= len(FIRST) * len(LAST), f"at most {len(FIRST) * len(LAST)} customers")
    catalog: dict[str, Any] = {}
    item_ids = iter(rng.sample(range(10**9, 10**10), len(PRODUCTS) * len(COLORS)))
    for p, name in enumerate(PRODUCTS):
        product_id = f"prod_{101 + p}"
        variants = {}
        for color in COLORS:
            item_id = str(next(item_ids))
            variants[item_id] = {
                "item_id": item_id,
                "options": {"color": color},
                "available": rng.random() < 0.85,
                "price": round(rng.uniform(15, 150), 2),
            }
        catalog[product_id] = {"product_id": product_id, "name": name, "variants": variants}

    names = rng.sample([(f, s) for f in FIRST for s in LAST], customers)
    customer_ids = rng.sample(range(10_000, 100_000), customers)
    zips = rng.sample(range(10_000, 100_000), customers)
    order_numbers = iter(rng.sample(range(10**6, 10**7), customers * 4))
    card_numbers = iter(rng.sample(range(10_000, 100_000), customers * 3))
    # by_name: find_customer's index, (first name, last name, zip) -> ids.
    data: dict[str, Any] = {"customers": {}, "orders": {}, "catalog": catalog, "by_name": {}}
    for c in range(customers):
        cid = f"cust_{customer_ids[c]}"
        methods = {}
        for kind in rng.sample(list(PAYMENT_PRIORITY), rng.choice((1, 1, 2, 3))):
            method_id = f"{kind.split('_')[0]}_{next(card_numbers)}"
            methods[method_id] = {"kind": kind, "id": method_id}
        order_ids = []
        for day in sorted(rng.sample(range(1, 200), rng.randint(1, 4))):
            order_id = f"#W{next(order_numbers)}"
            items = []
            for product_id in rng.sample(list(catalog), rng.randint(1, 3)):
                product = catalog[product_id]
                item_id = rng.choice(list(product["variants"]))
                variant = product["variants"][item_id]
                items.append(
                    {
                        "item_id": item_id,
                        "product_id": product_id,
                        "name": product["name"],
                        "options": dict(variant["options"]),
                        "price": variant["price"],
                    }
                )
            status = rng.choices(*zip(*ORDER_STATUSES, strict=False))[0]
            data["orders"][order_id] = {
                "order_id": order_id,
                "customer_id": cid,
                "status": status,
                "placed": f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}",
                "items": items,
                "payment_history": [
                    {
                        "payment_method_id": rng.choice(list(methods)),
                        "amount": round(sum(i["price"] for i in items), 2),
                    }
                ],
            }
            order_ids.append(order_id)
        first, last = names[c]
        data["customers"][cid] = {
            "customer_id": cid,
            "name": {"first_name": first, "last_name": last},
            "address": {
                "address1": f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
                "city": rng.choice(CITIES),
                "zip": str(zips[c]),
            },
            "status": "locked" if rng.random() < 0.08 else "active",
            "payment_methods": methods,
            "orders": order_ids,
        }
        data["by_name"][(first, last, str(zips[c]))] = [cid]
    return data


class Desk:
    """A copy of the data of its own and the tools acting on it; every call is logged, in
    order, with its arguments by name, whoever made it (replay or the agent).

    The copy is deep but lazy: the tables are copied (their records shared with ``data``)
    and a record is deep-copied before its first write, so no write ever reaches ``data``
    or another desk. A full deep copy per request cost more than the rest of the
    benchmark; ``serve_all`` checks at the end that ``data`` is as it was.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.customers: dict[str, Any] = dict(data["customers"])
        self.orders: dict[str, Any] = dict(data["orders"])
        self.catalog: dict[str, Any] = data["catalog"]  # no tool writes it
        self.by_name: dict[tuple[str, str, str], list[str]] = data["by_name"]
        self._owned: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, Any]] = []  # compared: (tool, canonical arguments)
        self.shown: list[str] = []  # the same calls, readable, for the report's examples

    def _own(self, table: str, key: str) -> dict[str, Any]:
        """The record, this desk's own copy, for writing."""
        records = getattr(self, table)
        if (table, key) not in self._owned:
            records[key] = copy.deepcopy(records[key])
            self._owned.add((table, key))
        return records[key]

    def _log(self, tool: str, **arguments: Any) -> None:
        self.calls.append((tool, canon(arguments)))
        self.shown.append(f"{tool}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})")

    # Results are copies, as a JSON API's would be: what the agent and the engine hold
    # must not change when a later call writes the record.

    def find_customer(self, first_name: str, last_name: str, zip: str) -> str | None:
        self._log("find_customer", first_name=first_name, last_name=last_name, zip=zip)
        found = self.matches(first_name, last_name, zip)
        return found[0] if len(found) == 1 else None

    def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        self._log("get_customer", customer_id=customer_id)
        return copy.deepcopy(self.customers.get(customer_id))

    def list_orders(self, customer_id: str) -> dict[str, Any]:
        self._log("list_orders", customer_id=customer_id)
        return {
            oid: {k: copy.deepcopy(v) for k, v in self.orders[oid].items() if k != "customer_id"}
            for oid in self.customers[customer_id]["orders"]
        }

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        self._log("get_order", order_id=order_id)
        return copy.deepcopy(self.orders.get(order_id))

    def get_product(self, product_id: str) -> dict[str, Any] | None:
        self._log("get_product", product_id=product_id)
        return copy.deepcopy(self.catalog.get(product_id))

    def modify_address(self, customer_id: str, address: dict[str, str]) -> dict[str, Any]:
        self._log("modify_address", customer_id=customer_id, address=address)
        customer = self._own("customers", customer_id)
        old = (customer["name"]["first_name"], customer["name"]["last_name"])
        self.by_name = {**self.by_name}  # the index is shared too: copied before a write
        self.by_name[(*old, customer["address"]["zip"])] = []
        self.by_name[(*old, address["zip"])] = [customer_id]
        customer["address"] = dict(address)
        return copy.deepcopy(customer)

    def cancel_pending_order(self, order_id: str, reason: str) -> dict[str, Any]:
        self._log("cancel_pending_order", order_id=order_id, reason=reason)
        self._own("orders", order_id).update(status="cancelled", cancel_reason=reason)
        return copy.deepcopy(self.orders[order_id])

    def return_items(
        self, order_id: str, item_ids: list[str], payment_method_id: str
    ) -> dict[str, Any]:
        self._log(
            "return_items",
            order_id=order_id,
            item_ids=item_ids,
            payment_method_id=payment_method_id,
        )
        self._own("orders", order_id).update(
            status="return requested",
            returned=list(item_ids),
            refund_to=payment_method_id,
        )
        return copy.deepcopy(self.orders[order_id])

    def exchange_items(
        self,
        order_id: str,
        item_ids: list[str],
        new_item_ids: list[str],
        payment_method_id: str,
    ) -> dict[str, Any]:
        self._log(
            "exchange_items",
            order_id=order_id,
            item_ids=item_ids,
            new_item_ids=new_item_ids,
            payment_method_id=payment_method_id,
        )
        self._own("orders", order_id).update(
            status="exchange requested",
            exchange={"from": list(item_ids), "to": list(new_item_ids)},
            charged=payment_method_id,
        )
        return copy.deepcopy(self.orders[order_id])

    def add_order_note(self, order_id: str, note: str) -> str:
        self._log("add_order_note", order_id=order_id, note=note)
        self._own("orders", order_id).setdefault("notes", []).append(note)
        return "noted"

    def transfer_to_human(self, customer_id: str | None, summary: str) -> str:
        self._log("transfer_to_human", customer_id=customer_id, summary=summary)
        return "transferred"

    # -- what the pre-checks capture: the state of the records an argument names ----

    def matches(self, first_name: str, last_name: str, zip: str) -> list[str]:
        return list(self.by_name.get((first_name, last_name, zip), ()))

    def account_status(self, customer_id: str) -> str | None:
        customer = self.customers.get(customer_id)
        return None if customer is None else customer["status"]

    def order_state(
        self,
        order_id: str,
        item_ids: Sequence[str] = (),
        payment_method_id: str | None = None,
        new_item_ids: Sequence[str] = (),
    ) -> tuple[Any, ...]:
        order = self.orders.get(order_id)
        if order is None:
            return ("no such order",)
        held = {i["item_id"] for i in order["items"]}
        owner = self.customers[order["customer_id"]]
        variants = {v: p["variants"][v] for p in self.catalog.values() for v in p["variants"]}
        return (
            order["status"],
            tuple(i in held for i in item_ids),
            None if payment_method_id is None else payment_method_id in owner["payment_methods"],
            tuple(i in variants and variants[i]["available"] for i in new_item_ids),
        )


TOOL_NAMES = (
    "find_customer",
    "get_customer",
    "list_orders",
    "get_order",
    "get_product",
    "modify_address",
    "cancel_pending_order",
    "return_items",
    "exchange_items",
    "add_order_note",
    "transfer_to_human",
)


def canon(value: Any) -> Any:
    """A value with its types spelled out (True is not 1, a list not a tuple), hashable,
    so two calls compare equal exactly when their arguments are the same values."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(canon(k)), canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(canon(v) for v in value))
    return (type(value).__name__, repr(value))


# -- the agent -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    customer_id: str  # who asked: the harness's bookkeeping, never shown to the agent
    kind: str
    params: dict[str, str]

    def message(self) -> str:
        """What the customer wrote: every param, in words (the ``message`` task form)."""
        p = self.params
        who = f"Hi, this is {p['first_name']} {p['last_name']}, zip {p['zip']}."
        if self.kind == "update address":
            return f"{who} Please change my address to {p['address1']}, {p['city']} {p['new_zip']}."
        if self.kind == "cancel order":
            return f"{who} Please cancel order {p['order_id']}: {p['reason']}."
        if self.kind == "return item":
            return f"{who} I would like to return the {p['product']} of order {p['order_id']}."
        return f"{who} I would like to exchange my {p['product']} for a {p['color']} one."


class Session:
    """The agent's way of calling tools. After a handoff, the calls replay already made
    (``history``, from ``muscle_mem.handoff().steps``) are read back rather than made
    again, for as long as they are the calls this agent would have made; from the first
    one that is not, it makes its own."""

    def __init__(self, tools: Mapping[str, Callable[..., Any]], history: Iterable[Any] = ()):
        self.tools = tools
        self.history = list(history)
        self.position = 0

    def call(self, tool: str, **arguments: Any) -> Any:
        at, self.position = self.position, self.position + 1
        if at < len(self.history):
            step = self.history[at]
            if (step.tool, canon(step.arguments)) == (tool, canon(arguments)):
                return step.result
            self.history = []  # replay went elsewhere: nothing after it can be trusted
        return self.tools[tool](**arguments)


def exchange_choice(orders: Mapping[str, Any], product: str) -> tuple[str, dict[str, Any]] | None:
    """The exchange agent's rule: the most recent delivered order holding the product,
    and that item."""
    eligible = [
        (order["placed"], order_id, item)
        for order_id, order in orders.items()
        if order["status"] == "delivered"
        for item in order["items"]
        if item["name"] == product
    ]
    if not eligible:
        return None
    _, order_id, item = max(eligible, key=lambda e: (e[0], e[1]))
    return order_id, item


def run_agent(request: Request, session: Session) -> str:
    """The agent alone: each call decided from the params and what earlier calls
    returned, as an LLM following the desk's policy would."""
    p = request.params

    def escalate(customer_id: str | None, summary: str) -> str:
        # Never so for the requests generated, on their own data: only after a replay
        # that changed the data wrongly. The agent hands over rather than crash, and the
        # harness counts the calls that led here as wrong.
        session.call("transfer_to_human", customer_id=customer_id, summary=summary)
        return "transferred"

    customer_id = session.call(
        "find_customer", first_name=p["first_name"], last_name=p["last_name"], zip=p["zip"]
    )
    if customer_id is None:
        return escalate(None, "customer not found")
    customer = session.call("get_customer", customer_id=customer_id)
    if customer["status"] != "active":
        session.call("transfer_to_human", customer_id=customer_id, summary="account is locked")
        return "transferred"
    if request.kind == "update address":
        address = {"address1": p["address1"], "city": p["city"], "zip": p["new_zip"]}
        session.call("modify_address", customer_id=customer_id, address=address)
        return "address updated"
    if request.kind == "cancel order":
        if p["order_id"] not in customer["orders"]:
            return escalate(customer_id, "the order is not theirs")
        order = session.call("get_order", order_id=p["order_id"])
        if order["status"] != "pending":
            # Declining is a decision too: made by a call whose check sees the order's
            # status. A path that just ended here would replay as a hit for a pending
            # order, skipping its cancellation, with no check to say otherwise.
            session.call("add_order_note", order_id=p["order_id"], note=CANCEL_REFUSED)
            return f"can't cancel: the order is {order['status']}"
        session.call("cancel_pending_order", order_id=p["order_id"], reason=p["reason"])
        return "cancelled"
    if request.kind == "return item":
        order = session.call("get_order", order_id=p["order_id"])
        if order["status"] != "delivered":
            session.call("add_order_note", order_id=p["order_id"], note=RETURN_REFUSED)
            return f"can't return: the order is {order['status']}"
        item = next((i for i in order["items"] if i["name"] == p["product"]), None)
        if item is None:
            return escalate(customer_id, "the product is not in the order")
        session.call(
            "return_items",
            order_id=order["order_id"],
            item_ids=[item["item_id"]],
            payment_method_id=order["payment_history"][0]["payment_method_id"],
        )
        return "return requested"
    orders = session.call("list_orders", customer_id=customer_id)
    chosen = exchange_choice(orders, p["product"])
    if chosen is None:
        return escalate(customer_id, "nothing to exchange")
    order_id, item = chosen
    product = session.call("get_product", product_id=item["product_id"])
    wanted = [
        item_id
        for item_id, variant in product["variants"].items()
        if variant["options"]["color"] == p["color"] and variant["available"]
    ]
    if not wanted:
        return f"no {p['color']} {p['product']} in stock"
    methods = customer["payment_methods"]
    payment = min(methods, key=lambda m: (PAYMENT_PRIORITY[methods[m]["kind"]], m))
    session.call(
        "exchange_items",
        order_id=order_id,
        item_ids=[item["item_id"]],
        new_item_ids=wanted[:1],
        payment_method_id=payment,
    )
    return "exchange requested"


def make_requests(data: dict[str, Any], seed: int) -> list[Request]:
    """One request per customer, about things that customer has."""
    rng = random.Random(seed + 1)
    requests = []
    for cid, customer in data["customers"].items():
        orders = {oid: data["orders"][oid] for oid in customer["orders"]}
        delivered = [oid for oid, o in orders.items() if o["status"] == "delivered"]
        kinds = ["update address", "cancel order"] + (
            ["return item", "exchange item"] if delivered else []
        )
        kind = rng.choice(kinds)
        params = {
            "first_name": customer["name"]["first_name"],
            "last_name": customer["name"]["last_name"],
            "zip": customer["address"]["zip"],
        }
        if kind == "update address":
            new_zip = customer["address"]["zip"]
            while new_zip == customer["address"]["zip"]:
                new_zip = str(rng.randrange(10_000, 100_000))
            params.update(
                address1=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
                city=rng.choice(CITIES),
                new_zip=new_zip,
            )
        elif kind == "cancel order":
            pending = [oid for oid, o in orders.items() if o["status"] == "pending"]
            # Mostly pending orders; some customers ask about one that has moved on.
            pool = pending if pending and rng.random() < 0.8 else list(orders)
            params.update(order_id=rng.choice(pool), reason=rng.choice(REASONS))
        elif kind == "return item":
            pool = delivered if rng.random() < 0.85 else list(orders)
            order_id = rng.choice(pool)
            item = rng.choice(orders[order_id]["items"])
            params.update(order_id=order_id, product=item["name"])
        else:
            product = rng.choice(
                sorted({i["name"] for oid in delivered for i in orders[oid]["items"]})
            )
            chosen = exchange_choice(orders, product)
            assert chosen is not None
            current = chosen[1]["options"]["color"]
            params.update(product=product, color=rng.choice([c for c in COLORS if c != current]))
        requests.append(Request(cid, kind, params))
    return requests


# -- one engine over the desk --------------------------------------------------------------


def engine_options(provenance_off: bool) -> tuple[dict[str, Any], str]:
    """The Engine options for a configuration, and what actually ran."""
    accepts = "provenance" in inspect.signature(Engine).parameters
    if not provenance_off:
        return {}, "Engine() (provenance)" if accepts else "Engine() (no provenance on this build)"
    if accepts:
        return {"provenance": False}, "Engine(provenance=False)"
    return {}, "Engine() for provenance=False (not accepted by this build)"


class Served:
    """An engine whose tools act on ``self.desk`` and whose agent serves ``self.request``:
    the harness sets both before each run."""

    def __init__(self, store: str, options: dict[str, Any]) -> None:
        self.engine = Engine(store=store, **options)
        self.desk: Desk = Desk({"customers": {}, "orders": {}, "catalog": {}, "by_name": {}})
        self.request: Request | None = None
        self.tools = self._tools()
        self.engine.set_agent(self._agent).finalize()

    def _tools(self) -> dict[str, Callable[..., Any]]:
        engine = self.engine

        def desk() -> Desk:
            return self.desk

        @engine.function(
            name="find_customer",
            pre_check=Check(
                lambda first_name, last_name, zip: len(desk().matches(first_name, last_name, zip))
            ),
        )
        def find_customer(first_name: str, last_name: str, zip: str) -> Any:
            return desk().find_customer(first_name, last_name, zip)

        @engine.function(
            name="get_customer",
            pre_check=Check(lambda customer_id: customer_id in desk().customers),
        )
        def get_customer(customer_id: str) -> Any:
            return desk().get_customer(customer_id)

        @engine.function(
            name="list_orders",
            pre_check=Check(lambda customer_id: desk().account_status(customer_id)),
        )
        def list_orders(customer_id: str) -> Any:
            return desk().list_orders(customer_id)

        def order_and_account(order_id: str) -> tuple[Any, ...]:
            order = desk().orders.get(order_id)
            return (order is not None, order and desk().account_status(order["customer_id"]))

        @engine.function(name="get_order", pre_check=Check(order_and_account))
        def get_order(order_id: str) -> Any:
            return desk().get_order(order_id)

        @engine.function(
            name="get_product", pre_check=Check(lambda product_id: desk().catalog.get(product_id))
        )
        def get_product(product_id: str) -> Any:
            return desk().get_product(product_id)

        @engine.function(
            name="modify_address",
            pre_check=Check(lambda customer_id, address: desk().account_status(customer_id)),
        )
        def modify_address(customer_id: str, address: dict[str, str]) -> Any:
            return desk().modify_address(customer_id, address)

        @engine.function(
            name="cancel_pending_order",
            pre_check=Check(lambda order_id, reason: desk().order_state(order_id)),
        )
        def cancel_pending_order(order_id: str, reason: str) -> Any:
            return desk().cancel_pending_order(order_id, reason)

        @engine.function(
            name="return_items",
            pre_check=Check(
                lambda order_id, item_ids, payment_method_id: desk().order_state(
                    order_id, item_ids, payment_method_id
                )
            ),
        )
        def return_items(order_id: str, item_ids: list[str], payment_method_id: str) -> Any:
            return desk().return_items(order_id, item_ids, payment_method_id)

        @engine.function(
            name="exchange_items",
            pre_check=Check(
                lambda order_id, item_ids, new_item_ids, payment_method_id: desk().order_state(
                    order_id, item_ids, payment_method_id, new_item_ids
                )
            ),
        )
        def exchange_items(
            order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
        ) -> Any:
            return desk().exchange_items(order_id, item_ids, new_item_ids, payment_method_id)

        @engine.function(
            name="add_order_note",
            pre_check=Check(lambda order_id, note: desk().order_state(order_id)),
        )
        def add_order_note(order_id: str, note: str) -> Any:
            return desk().add_order_note(order_id, note)

        @engine.function(
            name="transfer_to_human",
            pre_check=Check(lambda customer_id, summary: desk().account_status(customer_id)),
        )
        def transfer_to_human(customer_id: str | None, summary: str) -> Any:
            return desk().transfer_to_human(customer_id, summary)

        tools = (
            find_customer,
            get_customer,
            list_orders,
            get_order,
            get_product,
            modify_address,
            cancel_pending_order,
            return_items,
            exchange_items,
            add_order_note,
            transfer_to_human,
        )
        return dict(zip(TOOL_NAMES, tools, strict=True))

    def _agent(self, task: str) -> str:
        assert self.request is not None
        handoff = muscle_mem.handoff()
        return run_agent(self.request, Session(self.tools, handoff.steps if handoff else ()))

    def run(self, request: Request, data: dict[str, Any], form: str, **options: Any) -> Any:
        self.desk, self.request = Desk(data), request
        task = request.kind if form == "kind" else request.message()
        return self.engine(task, params=request.params, **options)


def alone(request: Request, data: dict[str, Any]) -> Desk:
    """The agent alone on ``data``: its desk holds the calls it made for ``request``."""
    desk = Desk(data)
    run_agent(request, Session({name: getattr(desk, name) for name in TOOL_NAMES}))
    return desk


# -- the workload -------------------------------------------------------------------------


@dataclass
class Tally:
    """What one configuration did over the served requests."""

    label: str
    form: str
    served: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    wrong_requests: int = 0
    wrong_hits: int = 0
    wrong_calls: int = 0
    missing_calls: int = 0
    calls: int = 0
    repeats: Counter[str] = field(default_factory=Counter)  # of a recorded request
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.label,
            "form": self.form,
            "served": self.served,
            "hit": self.statuses["hit"],
            "handoff": self.statuses["handoff"],
            "miss": self.statuses["miss"],
            "wrong_requests": self.wrong_requests,
            "wrong_hits": self.wrong_hits,
            "wrong_calls": self.wrong_calls,
            "missing_calls": self.missing_calls,
            "calls": self.calls,
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
            "repeats": dict(self.repeats),
            "reasons": [
                {"status": s, "kind": k, "rule": r, "count": n}
                for (s, k, r), n in self.reasons.most_common()
            ],
            "examples": list(self.examples),
            "seconds": self.seconds,
        }


def rule_of(reason: str) -> str:
    """A reason with its values stripped: the rule that stopped replay, to group by."""
    text = re.sub(r"^step \d+: ", "", reason)
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "…", text)
    text = re.sub(r"\b\d+(?:\.\d+)?\b", "N", text)
    text = re.sub(r"\((?:…|True|False|None|N|\(\)|\(…,?\)|[, ])*\)", "(…)", text)
    return re.sub(r"(?:…, )+…", "…", text)


def wrong_positions(served: Sequence[Any], agent: Sequence[Any]) -> int:
    """Calls made at a position where the agent alone made another call, or none."""
    return sum(1 for i, call in enumerate(served) if i >= len(agent) or call != agent[i])


def serve_all(
    config: tuple[str, bool],
    data: dict[str, Any],
    recorded: list[Request],
    served: list[Request],
    store: str,
) -> Tally:
    """Record ``recorded``, then serve ``served`` through one engine on a new ``store``,
    each request compared with the agent alone."""
    form, provenance_off = config
    options, label = engine_options(provenance_off)
    started = time.perf_counter()
    before = copy.deepcopy(data)
    harness = Served(store, options)
    tally = Tally(label, form)
    try:
        for request in recorded:
            outcome = harness.run(request, data, form, mode="record")
            expect(outcome.status == "miss", f"recording {request} was a {outcome.status}")
            expect(
                harness.desk.calls == alone(request, data).calls,
                f"the agent recorded other calls than it makes alone for {request}",
            )
        for request in served:
            by_agent = alone(request, data)  # each Desk is a copy of its own
            agent_calls = by_agent.calls
            outcome = harness.run(request, data, form)
            made = harness.desk.calls
            replayed = [(s.tool, canon(s.arguments)) for s in outcome.steps]
            expect(
                made[: len(replayed)] == replayed and len(replayed) == outcome.replayed,
                f"outcome.steps are not the first calls made for {request}",
            )
            status = str(outcome.status.value)
            tally.served += 1
            tally.calls += len(made)
            tally.statuses[status] += 1
            tally.by_kind.setdefault(request.kind, Counter())[status] += 1
            repeat = request in recorded
            if repeat:
                tally.repeats[status] += 1
            if outcome.reason:
                tally.reasons[(status, request.kind, rule_of(outcome.reason))] += 1
            if made != agent_calls:
                wrong = wrong_positions(made, agent_calls)
                tally.wrong_requests += 1
                tally.wrong_hits += outcome.status == "hit"
                tally.wrong_calls += wrong
                tally.missing_calls += max(0, len(agent_calls) - len(made))
                tally.by_kind[request.kind]["wrong"] += 1
                tally.repeats["wrong"] += repeat
                if len(tally.examples) < 2:
                    tally.examples.append(describe_wrong(request, outcome, harness.desk, by_agent))
    finally:
        harness.engine.close()
    expect(data == before, "a request's writes reached the shared data: requests leaked")
    tally.seconds = time.perf_counter() - started
    return tally


def describe_wrong(request: Request, outcome: Any, served: Desk, agent: Desk) -> str:
    """The first call where serving and the agent alone part, in words."""
    made, wanted = served.calls, agent.calls
    at = next(
        i
        for i in range(len(made) + 1)
        if i == len(made) or i >= len(wanted) or made[i] != wanted[i]
    )
    shown = served.shown[at] if at < len(made) else "no call"
    expected = agent.shown[at] if at < len(wanted) else "no call"
    return (
        f"{request.kind} for {request.customer_id}, a {outcome.status.value} "
        f"({outcome.replayed} replayed): call {at} was `{shown}` where the agent alone "
        f"makes `{expected}`"
    )


def split(requests: list[Request], record: int, repeats: int, seed: int):
    """Requests to record (``record`` customers, spread over the kinds), and those to
    serve: every other customer's, with ``repeats`` of the recorded ones among them."""
    rng = random.Random(seed + 2)
    order = list(requests)
    rng.shuffle(order)
    by_kind: dict[str, list[Request]] = {k: [r for r in order if r.kind == k] for k in KINDS}
    recorded: list[Request] = []
    while len(recorded) < record and any(by_kind.values()):
        for kind in KINDS:
            if by_kind[kind] and len(recorded) < record:
                recorded.append(by_kind[kind].pop(0))
    chosen = {r.customer_id for r in recorded}
    served = [r for r in order if r.customer_id not in chosen]
    for again in rng.sample(recorded, min(repeats, len(recorded))):
        served.insert(rng.randrange(len(served) + 1), again)
    return recorded, served


# -- record-time cost against result size ---------------------------------------------------


def cost_engine(options: dict[str, Any], records: list[dict[str, Any]]) -> Engine:
    """A three-step task: list ``records``, read the one in the middle by the id the list
    gave, add a note to it. Each later id is a value of an earlier result, so a tracing
    engine searches the listed records for it."""
    index = {r["id"]: r for r in records}
    engine = Engine(store="memory://", **options)

    @engine.function(name="list_records", pre_check=Check(lambda: "crm-v1"))
    def list_records() -> list[dict[str, Any]]:
        return list(records)  # a new list each run: nothing can be reused across runs

    @engine.function(name="get_record", pre_check=Check(lambda record_id: record_id in index))
    def get_record(record_id: str) -> dict[str, Any]:
        return index[record_id]

    @engine.function(name="add_note", pre_check=Check(lambda record_id, note: record_id in index))
    def add_note(record_id: str, note: str) -> str:
        return "noted"

    def agent(task: str) -> None:
        found = list_records()
        record = get_record(found[len(found) // 2]["id"])
        add_note(record["id"], note="called back")

    return engine.set_agent(agent).finalize()


def record_cost(sizes: Sequence[int], runs: int) -> dict[str, Any]:
    """Seconds per recorded run of :func:`cost_engine`'s task with results of each size,
    tracing on (``Engine()``) and off (``provenance=False``, where this build accepts
    it). Runs alternate between the two engines, so the machine's drift lands on both."""
    configs = [engine_options(False), engine_options(True)]
    if configs[0][0] == configs[1][0]:
        configs = configs[:1]  # no option on this build: one engine to time
    figures: dict[str, Any] = {"engines": [label for _, label in configs], "rows": []}
    for size in sizes:
        records = [
            {
                "id": f"rec_{i:07d}",
                "name": f"Customer {i}",
                "email": f"customer{i}@example.com",
                "status": "active" if i % 7 else "locked",
                "tags": ["vip", "newsletter"] if i % 3 == 0 else ["newsletter"],
                "address": {"city": CITIES[i % len(CITIES)], "zip": f"{10_000 + i % 90_000}"},
            }
            for i in range(size)
        ]
        engines = [cost_engine(options, records) for options, _ in configs]
        samples: list[list[float]] = [[] for _ in engines]
        for _ in range(max(5, runs if size <= 1000 else runs // 3)):
            for engine, times in zip(engines, samples, strict=True):
                start = time.perf_counter()
                outcome = engine("follow up", mode="record")
                times.append(time.perf_counter() - start)
                expect(outcome.status == "miss", "a recorded run must be a miss")
        for engine in engines:
            engine.close()
        figures["rows"].append({"size": size, "seconds": [statistics.median(t) for t in samples]})
    return figures


# -- the report ----------------------------------------------------------------------------


CONFIGS = (("kind", False), ("kind", True), ("message", False))


def benchmark(
    customers: int = 400,
    record: int = 40,
    repeats: int = 20,
    seed: int = 0,
    sizes: Sequence[int] = (10, 100, 1000, 10_000),
    runs: int = 30,
    store: str = "memory",
    configs: Sequence[tuple[str, bool]] = CONFIGS,
) -> dict[str, Any]:
    """Run the workload in each configuration and time recording against result size;
    the report as plain data. ``store`` is "memory" or "sqlite" (a new file for each
    configuration, so each starts from an empty cache and reads back what it stored)."""
    started = time.perf_counter()
    data = make_data(customers, seed)
    requests = make_requests(data, seed)
    recorded, served = split(requests, record, repeats, seed)
    check_task_keys(requests)
    with tempfile.TemporaryDirectory() as folder:
        results = [
            serve_all(
                config,
                data,
                recorded,
                served,
                "memory://" if store == "memory" else f"sqlite:///{folder}/cache{i}.db",
            ).as_dict()
            for i, config in enumerate(configs)
        ]
    return {
        "customers": customers,
        "seed": seed,
        "store": store,
        "recorded": len(recorded),
        "served": len(served),
        "repeats": sum(1 for r in served if r in recorded),
        "kinds": dict(Counter(r.kind for r in served)),
        "configs": results,
        "record_cost": record_cost(sizes, runs) if sizes else None,
        "seconds": time.perf_counter() - started,
    }


def check_task_keys(requests: list[Request]) -> None:
    """All requests of a kind share one task key in both forms: otherwise nothing could be
    served from another customer's recording, and the figures would mean nothing."""
    with Engine(store="memory://") as engine:
        for form in FORMS:
            for kind in KINDS:
                keys = {
                    engine.task_key(r.kind if form == "kind" else r.message(), params=r.params)
                    for r in requests
                    if r.kind == kind
                }
                expect(len(keys) <= 1, f"{kind!r} requests make {len(keys)} task keys ({form})")


TOP = 8  # reasons listed per configuration
FORM_NAMES = {"kind": "kind as the task", "message": "message as the task"}


def markdown(report: dict[str, Any], command: str) -> str:
    lines = [
        f"- Command: `{command}`; {report['seconds']:.0f} s, {report['store']} store, "
        f"Python {sys.version.split()[0]}, muscle-mem {muscle_mem.__version__}",
        f"- {report['customers']} customers (seed {report['seed']}), one request each; "
        f"{report['recorded']} recorded, {report['served']} served "
        f"({report['repeats']} of them repeats of a recorded request): "
        + ", ".join(f"{n} {k}" for k, n in sorted(report["kinds"].items())),
        "",
        "| Engine | Task | Served | Hits | Handoffs | Misses | Requests with wrong calls "
        "(of them hits) | Wrong calls / calls made |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in report["configs"]:
        lines.append(
            f"| {c['engine']} | {FORM_NAMES[c['form']]} | {c['served']} | {c['hit']} | "
            f"{c['handoff']} | {c['miss']} | **{c['wrong_requests']}** ({c['wrong_hits']}) | "
            f"**{c['wrong_calls']}** / {c['calls']} |"
        )
    lines += [""]
    for c in report["configs"]:
        r = c["repeats"]
        lines.append(
            f"- {c['engine']}, {FORM_NAMES[c['form']]}: of the {report['repeats']} repeats of a "
            f"recorded request, {r.get('hit', 0)} hits, {r.get('handoff', 0)} handoffs, "
            f"{r.get('miss', 0)} misses; {r.get('wrong', 0)} with wrong calls"
        )
    lines += ["", "By kind (hits / handoffs / misses, requests with wrong calls):", ""]
    lines.append("| Engine | Task | " + " | ".join(KINDS) + " |")
    lines.append("|---|---|" + "---|" * len(KINDS))
    for c in report["configs"]:
        cells = []
        for kind in KINDS:
            n = c["by_kind"].get(kind, {})
            cells.append(
                f"{n.get('hit', 0)} / {n.get('handoff', 0)} / {n.get('miss', 0)}, "
                f"wrong {n.get('wrong', 0)}"
            )
        lines.append(f"| {c['engine']} | {FORM_NAMES[c['form']]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Why replay stopped (reasons with their values stripped, {TOP} most common):",
        "",
    ]
    if not any(c["reasons"] for c in report["configs"]):
        lines.append("Nothing stopped replay: every served request was a hit.")
    else:
        lines += [
            "| Engine | Task | Outcome | Kind | Rule | Requests |",
            "|---|---|---|---|---|---|",
        ]
    for c in report["configs"]:
        for r in c["reasons"][:TOP]:
            rule = r["rule"].replace("|", "\\|")
            lines.append(
                f"| {c['engine']} | {FORM_NAMES[c['form']]} | {r['status']} | {r['kind']} | "
                f"{rule} | {r['count']} |"
            )
    examples = [(c, e) for c in report["configs"] for e in c["examples"]]
    if examples:
        lines += ["", "First wrong calls seen:", ""]
        lines += [f"- {c['engine']}, {FORM_NAMES[c['form']]}: {e}" for c, e in examples]
    cost = report["record_cost"]
    if cost:
        lines += ["", "Record-time cost against the size of the result searched:", ""]
        engines = cost["engines"]
        header = "| Records in the result | " + " | ".join(f"record, {e}" for e in engines)
        if len(engines) == 2:
            header += " | Tracing cost per run | per record"
        lines += [header + " |", "|---" * header.count("|") + "|"]
        for row in cost["rows"]:
            secs = row["seconds"]
            cells = [f"{row['size']:,}", *(f"{s * 1e3:.3f} ms" for s in secs)]
            if len(secs) == 2:
                extra = secs[0] - secs[1]
                cells += [f"{extra * 1e6:.0f} µs", f"{extra / row['size'] * 1e6:.2f} µs"]
            lines.append("| " + " | ".join(cells) + " |")
        if len(engines) == 1:
            lines += [
                "",
                "This build has no `provenance` option: only `Engine()` was timed, and it does "
                "not search results.",
            ]
    return "\n".join(lines)


def write_section(block: str, docs: Path = DOCS) -> None:
    """Replace what is between the markers in ``docs``; add the heading and markers at
    the end if they are not there yet. Text around them is kept."""
    text = docs.read_text()
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
    else:
        before, after = f"{text.rstrip()}\n\n{HEADING}\n\n", "\n"
    docs.write_text(f"{before}{BEGIN}\n{block}\n{END}{after}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=400, help="customers (default 400)")
    parser.add_argument("--record", type=int, help="requests recorded (default: a tenth)")
    parser.add_argument(
        "--repeats", type=int, help="recorded requests served again (default: half)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the data's seed (default 0)")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[10, 100, 1000, 10_000],
        help="result sizes for the record-time cost, comma-separated ('' to skip)",
    )
    parser.add_argument("--runs", type=int, default=30, help="recorded runs timed per size")
    parser.add_argument(
        "--store", default="memory", choices=("memory", "sqlite"), help="where the cache lives"
    )
    parser.add_argument("--write", action="store_true", help=f"write the section into {DOCS.name}")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record is None:
        args.record = max(len(KINDS), args.customers // 10)
    if args.repeats is None:
        args.repeats = args.record // 2
    if args.record >= args.customers:
        parser.error("--record must leave customers to serve")
    return args


def main(argv: list[str]) -> dict[str, Any]:
    args = parse(argv)
    report = benchmark(
        args.customers,
        args.record,
        args.repeats,
        args.seed,
        args.sizes,
        args.runs,
        args.store,
    )
    command = " ".join(["python3 benchmarks/provenance.py", *(a for a in argv if a != "--write")])
    block = markdown(report, command)
    print(block)
    if args.write:
        write_section(block, args.docs)
        print(f"wrote {args.docs}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
