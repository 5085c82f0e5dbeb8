import importlib
import math

import pytest

from lecture_utils.exercises import (
    CORRECT,
    DEFAULT_REL_TOL,
    OUTPUT_WIDTH,
    UNANSWERED,
    Exercises,
    check_count,
    check_number,
    difference_text,
    tolerance_text,
    wrong,
)


def test_check_number_verdicts():
    assert check_number(None, 3.0) is UNANSWERED
    assert check_number(3.0001, 3.0, rel_tol=1e-3) is CORRECT
    assert check_number("3", 3.0).correct is False
    assert check_number(True, 1.0).correct is False


def test_the_default_tolerance_accepts_three_significant_figures():
    assert DEFAULT_REL_TOL == 0.02
    for expected in (26.74e9, 30.44, 1.049, 9.995e-3, 123_456):
        rounded = float(f"{expected:.3g}")
        assert check_number(rounded, expected) is CORRECT, (rounded, expected)
    assert check_number(30, 30.44) is CORRECT  # 2 significant figures, 1.4% off
    assert check_number(1.1, 1.049).correct is False  # 2 figures 4.9% off: a stated tighter need


def test_a_wrong_answer_gets_a_percent_or_a_multiple_never_a_factor_of_one():
    assert difference_text(27.6e9, 26.7e9) == "3.4% too large"
    assert difference_text(29.0, 30.44) == "4.7% too small"
    assert difference_text(12.0, 1.0) == "about 12x too large"
    assert difference_text(1.0, 3.0) == "about 3x too small"
    message = check_number(29.0, 30.44, unit="days").message
    assert "4.7% too small" in message and "within 2%" in message and "factor of" not in message
    assert "only the exact value" in check_number(99, 100, rel_tol=0).message
    assert tolerance_text(0) == "exactly" and tolerance_text(0.02) == "within 2%"


def test_check_number_names_what_kind_of_wrong():
    hint = check_number(6.0, 3.0, hints={6.0: "you doubled it"})
    assert hint.correct is False and "you doubled it" in hint.message
    assert "GB" in check_number(3e9 * 2**30 / 1e9, 3e9).message
    assert "10^3" in check_number(3000.0, 3.0).message
    assert "sign" in check_number(-3.0, 3.0).message
    assert "too large" in check_number(4.0, 3.0).message
    assert "got nan (not a number)" in check_number(math.nan, 3.0).message
    assert "finite" in check_number(math.inf, 3.0).message
    assert "text '3'" in check_number("3", 3.0).message and "without quotes" in \
        check_number("3", 3.0).message
    assert "expected a number" in check_number([3.0], 3.0).message


def test_exercises_registry(capsys):
    ex = Exercises("99")

    @ex.checker(1, "a number", wants="an int, exactly")
    def _(answer):
        return CORRECT if answer == 1 else wrong("try 1")

    @ex.checker(2, "raises")
    def _(answer):
        raise ZeroDivisionError("boom")

    ex.check(1, 1)
    ex.check(1, 2)
    ex.check(1, None)
    ex.check(1, math.nan)
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    # A mark and a word: the word reads where no emoji font is installed.
    assert out[0] == "✅ [correct] Exercise 99.1 (a number): well done."
    assert out[1].startswith("❌ [wrong]") and "try 1" in out[1]
    assert out[1].endswith("Wanted: an int, exactly.")  # every verdict but a correct one
    assert out[2].startswith("⏳ [to do]") and "not answered yet" in out[2]
    assert out[3].startswith("❌ [wrong]") and "nan" in out[3]  # never reaches the checker
    assert "ZeroDivisionError" in ex.feedback(2, 5).message
    with pytest.raises(KeyError, match="no exercise 3"):
        ex.feedback(3, 1)
    with pytest.raises(ValueError, match="registered twice"):
        ex.checker(1, "again")


def test_a_long_verdict_is_wrapped_between_words(capsys):
    ex = Exercises("99")

    @ex.checker(1, "a long one", wants="a number of FLOPs, within 2%")
    def _(answer):
        return wrong("a hint " * 30)

    ex.check(1, 5)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and all(len(line) <= OUTPUT_WIDTH for line in lines)
    assert all(line.startswith("    ") for line in lines[1:])


def test_check_count_wants_the_exact_count_and_matches_hints_exactly():
    hints = {990: "one term short."}
    assert check_count(1000, 1000) == CORRECT and check_count(1000.0, 1000) == CORRECT
    assert check_count(990, 1000, hints=hints).message.endswith("one term short.")
    near = check_count(991, 1000, hints=hints)  # near the slip, but not the slip: no hint
    assert "one term short" not in near.message and "must be exact" in near.message
    assert "10^-3" in check_count(1, 1000, unit="bytes").message
    assert "sign is wrong" in check_count(-1000, 1000).message
    assert "nonzero" in check_count(0, 1000).message
    assert "whole number" in check_count(992.5, 1000, unit="windows").message
    assert "recount" in check_count(500, 1000).message
    assert check_count(None, 1000) == UNANSWERED
    assert "text" in check_count("1000", 1000).message


def hint_tables(module, monkeypatch) -> list[tuple[int, float, float, dict]]:
    """(exercise, expected, rel_tol, hints) of every check_number call the checkers make."""
    from lecture_utils import exercises

    tables = []
    for number, exercise in module.EXERCISES.exercises.items():
        def record(answer, expected, *, rel_tol=exercises.DEFAULT_REL_TOL, hints=None, unit="",
                   number=number):
            tables.append((number, expected, rel_tol, dict(hints or {})))
            return exercises.check_number(answer, expected, rel_tol=rel_tol, hints=hints,
                                          unit=unit)

        monkeypatch.setattr(module, "check_number", record)
        exercise.checker(1.2345)
    return tables


@pytest.mark.parametrize("name", ["napkin", "tensors", "dtypes"])
def test_no_hint_is_triggered_by_the_right_answer_or_by_another_hint(name, monkeypatch):
    tables = hint_tables(importlib.import_module(f"lecture_utils.{name}"), monkeypatch)
    assert tables
    for number, expected, rel_tol, hints in tables:
        values = [expected, *hints]
        tolerance = 2 * max(rel_tol, 1e-3)  # a value within this of two triggers is ambiguous
        for i, a in enumerate(values):
            for b in values[i + 1:]:
                assert not math.isclose(a, b, rel_tol=tolerance), (number, a, b)
