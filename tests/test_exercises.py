import pytest

from lecture_utils.exercises import (
    CORRECT,
    UNANSWERED,
    Exercises,
    check_number,
    wrong,
)


def test_check_number_verdicts():
    assert check_number(None, 3.0) is UNANSWERED
    assert check_number(3.0001, 3.0, rel_tol=1e-3) is CORRECT
    assert check_number("3", 3.0).correct is False
    assert check_number(True, 1.0).correct is False


def test_check_number_hints():
    hint = check_number(6.0, 3.0, hints={6.0: "you doubled it"})
    assert hint.correct is False and "you doubled it" in hint.message
    assert "GB" in check_number(3e9 * 2**30 / 1e9, 3e9).message
    assert "10^3" in check_number(3000.0, 3.0).message
    assert "sign" in check_number(-3.0, 3.0).message
    assert "too large" in check_number(4.0, 3.0).message


def test_exercises_registry(capsys):
    ex = Exercises("99")

    @ex.checker(1, "a number")
    def _(answer):
        return CORRECT if answer == 1 else wrong("try 1")

    @ex.checker(2, "raises")
    def _(answer):
        raise ZeroDivisionError("boom")

    ex.check(1, 1)
    ex.check(1, 2)
    ex.check(1, None)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✅ Exercise 99.1") and "correct" in out[0]
    assert out[1].startswith("❌") and "try 1" in out[1]
    assert out[2].startswith("⏳") and "not answered yet" in out[2]
    assert "ZeroDivisionError" in ex.feedback(2, 5).message
    with pytest.raises(KeyError, match="no exercise 3"):
        ex.feedback(3, 1)
    with pytest.raises(ValueError, match="registered twice"):
        ex.checker(1, "again")
