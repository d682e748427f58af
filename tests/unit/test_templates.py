"""templates.py: a run's param values become references, and references become the
new run's values."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from muscle_mem.models import Param, Redacted, Text
from muscle_mem.templates import MissingParam, NotStored, Templater, has_params, resolve


def test_a_value_equal_in_type_and_value_to_a_param_becomes_a_reference():
    templater = Templater({"n": 1, "flag": True, "name": "John"})
    assert templater.template(1) == Param("n")
    assert templater.template(True) == Param("flag")  # True is not 1
    assert templater.template(1.0) == 1.0  # nor is 1.0
    assert templater.template("John") == Param("name")


def test_a_string_holding_a_param_becomes_text_but_not_inside_a_longer_word():
    templater = Templater({"name": "Jo"})
    assert templater.template("Hello Jo!") == Text(("Hello ", Param("name"), "!"))
    assert templater.template("Join") == "Join"


def test_the_longest_value_wins_and_the_first_param_wins_a_tie():
    templater = Templater({"first": "Ann", "full": "Ann Lee", "same": "Ann"})
    assert templater.template("Ann Lee and Ann") == Text((Param("full"), " and ", Param("first")))


def test_numbers_stand_for_their_text_only_in_a_task_and_only_as_whole_words():
    assert Templater({"n": 2}).template("add 2") == "add 2"
    words = Templater({"n": 2}, words=True)
    assert words.template("add 2") == Text(("add ", Param("n")))
    assert words.template("add 22 or 2.5") == "add 22 or 2.5"


def test_containers_are_templated_inside_and_unhashable_params_by_their_encoding():
    templater = Templater({"name": "John", "tags": ["a", "b"]})
    assert templater.template({"to": ["John", 3], "labels": ["a", "b"]}) == {
        "to": [Param("name"), 3],
        "labels": Param("tags"),
    }
    assert templater.template(("John",)) == (Param("name"),)


def test_resolve_fills_params_in_and_hands_out_fresh_containers():
    template = {"greeting": Text(("Hi ", Param("name"))), "items": [Param("n")]}
    first = resolve(template, {"name": "Ann", "n": 3})
    assert first == {"greeting": "Hi Ann", "items": [3]}
    first["items"].append(4)
    assert resolve(template, {"name": "Ann", "n": 3})["items"] == [3]


def test_other_objects_are_copied_so_a_tool_cannot_change_the_next_replay():
    @dataclass
    class Form:
        fields: list[str]

    template = Form(["a"])
    resolved = resolve(template, {})
    resolved.fields.append("b")
    assert template.fields == ["a"]


def test_resolve_reports_a_missing_param_and_a_value_that_was_never_stored():
    with pytest.raises(MissingParam) as missing:
        resolve([Param("zip")], {})
    assert missing.value.args == ("zip",)
    with pytest.raises(NotStored) as redacted:
        resolve((Redacted("password"),), {})
    assert redacted.value.args == ("password",)


def test_has_params_looks_inside_containers():
    assert has_params(((), {"to": [Param("name")]}))
    assert has_params((Redacted("password"),))  # resolving it is what reports it
    assert not has_params(((1, "x"), {"k": [2.0]}))
