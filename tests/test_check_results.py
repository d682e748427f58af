"""Checks that can't lie: a compare that returns neither a bool nor a number is an error
naming the check; a compare that raises fails its check, saying why.

Runs on every store kind (see conftest): what an error run keeps is the store's to say.
"""

import asyncio

import pytest

from muscle_mem import Check, ConfigurationError

TASK = "fill the form"


def field(name):
    return "#" + name


class Form:
    """One tool, ``type_into``, whose pre- or post-check compare answers ``self.answer``
    (or raises it, if it is an exception)."""

    def __init__(self, engine, which):
        self.engine = engine
        self.answer = True
        self.typed = []
        form = self

        def same_field(now, recorded):
            if isinstance(form.answer, Exception):
                raise form.answer
            return form.answer

        check = Check(capture=field, compare=same_field)
        options = {"pre_check": check} if which == "pre" else {"post_check": check}

        @engine.function(**options)
        def type_into(name):
            form.typed.append(name)

        def agent(task):
            type_into("name")

        engine.set_agent(agent).finalize()

    def shape(self):
        tree = self.engine.store.tree(self.engine.task_key(TASK))
        return sorted((n.id, len(n.pre), len(n.post), n.terminal, n.hits) for n in tree)


@pytest.mark.parametrize("which", ["pre", "post"])
@pytest.mark.parametrize("garbage", ["no", None, [], 0j], ids=["str", "None", "list", "complex"])
def test_a_compare_returning_neither_bool_nor_number_is_an_error_naming_the_check(
    engines, which, garbage
):
    form = Form(engines(), which)
    assert form.engine(TASK).status == "miss"
    assert form.engine(TASK).status == "hit"  # the compare said True: replayed
    kept = form.shape()

    form.answer = garbage
    with pytest.raises(ConfigurationError) as raised:
        form.engine(TASK)
    message = str(raised.value)
    assert "Check(field, " in message and "same_field)" in message  # capture and compare
    assert repr(garbage) in message and "must return a bool, or a number" in message

    logged = form.engine.store.runs()[-1]
    assert logged.status == "error" and "must return a bool" in logged.reason
    assert form.shape() == kept  # no node, snapshot or hit kept from the failed run


@pytest.mark.parametrize("which", ["pre", "post"])
def test_a_compare_that_raises_fails_its_check_with_the_exception_in_the_reason(engines, which):
    form = Form(engines(), which)
    form.engine(TASK)
    form.answer = ValueError("boom")

    outcome = form.engine(TASK)  # the error does not escape: the check failed

    assert not outcome
    assert f"the {which}-check compare of " in outcome.reason
    assert "type_into raised ValueError('boom')" in outcome.reason
    if which == "pre":  # nothing ran; the agent did the step
        assert (outcome.status, form.typed) == ("miss", ["name", "name"])
    else:  # the step ran, its post-check failed: the agent goes on from after it
        assert (outcome.status, outcome.diverged_at, outcome.replayed) == ("handoff", 0, 1)


def test_a_compare_that_raises_under_arun_fails_its_check_too(engines):
    form = Form(engines(), "pre")
    asyncio.run(form.engine.arun(TASK))
    form.answer = KeyError("selectors")
    outcome = asyncio.run(form.engine.arun(TASK))
    assert "pre-check compare of " in outcome.reason and "KeyError('selectors')" in outcome.reason
