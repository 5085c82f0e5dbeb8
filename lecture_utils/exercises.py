""""Check yourself" exercises: checkers that say what is wrong, not just "incorrect".

A notebook module declares its exercises once:

    EXERCISES = Exercises("03")

    @EXERCISES.checker(1, "FLOPs of a (B x D) @ (D x K) matmul")
    def _(answer):
        return check_number(answer, 2 * 16384 * 32768 * 8192, hints={...})

and the notebook calls `EXERCISES.check(1, answer)`. An answer left as None is reported as
"not answered yet", so a student copy with blank answers still runs top to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lecture_utils.hardware import NotFoundError


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: correct (True), wrong (False) or unanswered (None)."""

    correct: bool | None
    message: str


CORRECT = Feedback(True, "correct.")
UNANSWERED = Feedback(None, "not answered yet: replace the None (or the stub) with your answer.")


def wrong(hint: str) -> Feedback:
    """A wrong answer, with a hint that says what is probably wrong."""
    return Feedback(False, f"not quite. {hint}")


def check_number(
    answer: Any,
    expected: float,
    *,
    rel_tol: float = 1e-3,
    hints: dict[float, str] | None = None,
    unit: str = "",
) -> Feedback:
    """Check a number within `rel_tol`; `hints` maps typical wrong answers to what went wrong."""
    if answer is None:
        return UNANSWERED
    in_unit = f" (in {unit})" if unit else ""
    if isinstance(answer, bool) or not hasattr(answer, "__float__"):
        return wrong(f"expected a number{in_unit}, got {type(answer).__name__}.")
    try:
        value = float(answer)
    except (TypeError, ValueError, OverflowError):  # a tensor or array of several numbers
        return wrong(f"expected one number{in_unit}, got a {type(answer).__name__} that is not "
                     "a single number.")
    if not math.isfinite(value):
        return wrong(f"expected a finite number{in_unit}, got {value}.")
    if math.isclose(value, expected, rel_tol=rel_tol):
        return CORRECT
    for typical, hint in (hints or {}).items():
        if math.isclose(value, typical, rel_tol=rel_tol):
            return wrong(hint)
    if expected and value and math.isclose(value / expected, 2**30 / 1e9, rel_tol=1e-3):
        return wrong("off by 2^30/10^9: mixing up GB (10^9 bytes) and GiB (2^30 bytes)?")
    if expected and value and math.isclose(value / expected, 1e9 / 2**30, rel_tol=1e-3):
        return wrong("off by 10^9/2^30: mixing up GiB (2^30 bytes) and GB (10^9 bytes)?")
    ratio = value / expected if expected else 0.0
    if ratio and math.isfinite(ratio):  # a ratio that overflows or underflows says nothing
        exponent = round(math.log10(abs(ratio)))
        if exponent and math.isclose(abs(ratio), 10.0**exponent, rel_tol=1e-3):
            return wrong(f"off by a factor of 10^{exponent}: check your units{in_unit}.")
        if ratio < 0:
            return wrong("the sign is wrong.")
        direction = "too large" if ratio > 1 else "too small"
        return wrong(f"{direction} by a factor of {ratio:.3g}; recheck each factor{in_unit}.")
    return wrong(f"expected a different value{in_unit}.")


class UnknownExerciseError(NotFoundError):
    """A notebook has no exercise of this number."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number, a short title, and its checker."""

    number: int
    title: str
    checker: Callable[[Any], Feedback]


class Exercises:
    """The exercises of one notebook, checked by number."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        self.exercises: dict[int, Exercise] = {}

    def checker(self, number: int, title: str) -> Callable:
        """Register the decorated function as the checker of exercise `number`."""
        if number in self.exercises:
            raise ValueError(f"exercise {self.notebook}.{number} is registered twice")

        def register(fn: Callable[[Any], Feedback]) -> Callable[[Any], Feedback]:
            self.exercises[number] = Exercise(number, title, fn)
            return fn

        return register

    def feedback(self, number: int, answer: Any) -> Feedback:
        """The verdict on `answer` for exercise `number`, without printing."""
        if isinstance(number, bool) or not isinstance(number, int) or number not in self.exercises:
            known = ", ".join(str(n) for n in sorted(self.exercises))
            raise UnknownExerciseError(f"notebook {self.notebook} has no exercise {number!r} "
                                       f"(it has {known}): pass the exercise's number")
        if answer is None or answer is Ellipsis:
            return UNANSWERED
        try:
            return self.exercises[number].checker(answer)
        except Exception as e:  # noqa: BLE001 (a student's broken code must give a hint, not a traceback)
            return wrong(f"checking your answer raised {type(e).__name__}: {e}")

    def check(self, number: int, answer: Any) -> None:
        """Print the verdict on `answer` for exercise `number`."""
        verdict = self.feedback(number, answer)
        mark = {True: "✅", False: "❌", None: "⏳"}[verdict.correct]
        title = self.exercises[number].title
        print(f"{mark} Exercise {self.notebook}.{number} ({title}): {verdict.message}")
