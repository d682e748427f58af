"""Unit tier: ``muscle_mem.checks``. How ``Check.judge`` reads what a compare returns,
and which configurations ``Check`` refuses. No engine, no store."""

import numpy as np
import pytest

from muscle_mem import Check, ConfigurationError


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


@pytest.mark.parametrize("no", [False, np.False_, None, 0, 0.0, "", []])
def test_a_falsy_result_fails(no):
    assert judged(no) is None


@pytest.mark.parametrize("truthy", ["yes", [0], {"k": 1}, object()])
def test_any_other_truthy_result_is_a_yes(truthy):
    assert judged(truthy) == (1.0, True)


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
    ],
    ids=["capture", "compare", "threshold-without-compare"],
)
def test_a_bad_configuration_is_refused_saying_what_is_wrong(make, message):
    with pytest.raises(ConfigurationError, match=message) as info:
        make()
    assert isinstance(info.value, ValueError)  # a misuse error of the built-in kind too
