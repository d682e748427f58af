"""Unit tier: ``muscle_mem.checks``. How ``Check.judge`` reads what a compare returns,
and which configurations ``Check`` refuses. No engine, no store."""

import numpy as np
import pytest

from muscle_mem import Check, ConfigurationError
from muscle_mem.checks import CompareRaised


def capture():
    return "env"


def judged(result, threshold=None):
    """What judge() makes of a compare that returns ``result``."""
    return Check(capture, lambda now, then: result, threshold=threshold).judge("now", "then")


def test_the_compare_gets_the_current_capture_first_then_the_recorded_one():
    seen = []
    Check(capture, lambda now, then: seen.append((now, then)) or True).judge("live", "stored")
    assert seen == [("live", "stored")]


# -- yes or no ------------------------------------------------------------------------------


@pytest.mark.parametrize("yes", [True, np.True_], ids=["True", "numpy-True"])
def test_a_yes_is_a_full_score_that_ends_the_search(yes):
    assert judged(yes) == (1.0, True)


@pytest.mark.parametrize("no", [False, np.False_, 0, 0.0])
def test_a_no_or_a_zero_score_fails(no):
    assert judged(no) is None


@pytest.mark.parametrize(
    "garbage",
    ["yes", "no", "", None, [], [0], {"k": 1}, object(), 1j],
    ids=["yes", "no", "empty-str", "None", "empty-list", "list", "dict", "object", "complex"],
)
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_anything_but_a_bool_or_a_number_is_an_error_naming_the_check(garbage, threshold):
    def same_page(now, then):
        return garbage

    with pytest.raises(ConfigurationError) as raised:
        Check(capture, same_page, threshold=threshold).judge("now", "then")
    message = str(raised.value)
    assert message.startswith("the compare of Check(capture, ")
    assert "same_page) returned " in message and type(garbage).__qualname__ in message
    assert "must return a bool, or a number" in message


def test_a_long_returned_value_is_shortened_in_the_error():
    with pytest.raises(ConfigurationError) as raised:
        judged("x" * 1000)
    assert "'xxx" in str(raised.value) and len(str(raised.value)) < 250


def test_a_compare_that_raises_is_reported_as_such_not_as_a_misconfiguration():
    # Its own type, which replay turns into a failed check with the error in its reason.
    error = ValueError("boom")

    def broken(now, then):
        raise error

    with pytest.raises(CompareRaised) as raised:
        Check(capture, broken).judge("now", "then")
    assert raised.value.error is error and not isinstance(raised.value, ConfigurationError)


# -- scores -------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "as_float"), [(0.7, 0.7), (3, 3.0), (np.float64(0.25), 0.25)])
def test_without_threshold_a_nonzero_number_passes_as_a_score_to_rank(score, as_float):
    judgement = judged(score)
    assert judgement == (as_float, False)  # not final: a higher score may follow
    assert type(judgement[0]) is float


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.9, (0.9, False)), (0.5, (0.5, False)), (0.49, None), (0.0, None), (-1, None)],
    ids=["above", "at", "just-below", "zero", "negative"],
)
def test_with_a_threshold_a_score_passes_at_or_above_it(score, expected):
    assert judged(score, threshold=0.5) == expected


def test_with_a_threshold_even_a_yes_is_a_score_to_rank():
    # The threshold makes the result a number: True is 1.0, and never ends the search.
    assert judged(True, threshold=0.5) == (1.0, False)
    assert judged(False, threshold=0.5) is None


def test_with_a_threshold_of_zero_a_zero_score_passes():
    assert judged(0.0, threshold=0.0) == (0.0, False)


@pytest.mark.parametrize("threshold", [0, 0.5, np.float32(0.5)], ids=["int", "float", "numpy"])
def test_a_threshold_is_any_number(threshold):
    assert judged(0.75, threshold=threshold) == (0.75, False)


# -- equality -----------------------------------------------------------------------------


def test_without_compare_a_check_is_an_equality_check_not_judged():
    check = Check(capture)
    assert (check.compare, check.threshold, check.learn) == (None, None, True)
    # Equal snapshots are found by hash where they are stored; judge() is for compares.
    with pytest.raises(AssertionError, match="hash lookups"):
        check.judge("a", "a")


# -- configurations refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Check("env"), r"Check\(capture=\.\.\.\) must be callable, got str"),
        (
            lambda: Check(capture, 0.5),
            r"Check\(compare=\.\.\.\) must be callable or None, got float",
        ),
        (lambda: Check(capture, threshold=0.5), r"threshold=\.\.\.\) needs a compare"),
        (
            lambda: Check(capture, max, threshold="0.5"),
            r"Check\(threshold=\.\.\.\) must be a number, got '0\.5' \(str\)",
        ),
        (
            lambda: Check(capture, max, threshold=True),
            r"Check\(threshold=\.\.\.\) must be a number, got True \(bool\)",
        ),
    ],
    ids=["capture", "compare", "threshold-without-compare", "threshold-str", "threshold-bool"],
)
def test_a_bad_configuration_is_refused_saying_what_is_wrong(make, message):
    with pytest.raises(ConfigurationError, match=message) as info:
        make()
    assert isinstance(info.value, ValueError)  # a misuse error of the built-in kind too
