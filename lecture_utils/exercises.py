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
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lecture_utils.hardware import NotFoundError


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: correct (True), wrong (False) or unanswered (None)."""

    correct: bool | None
    message: str


CORRECT = Feedback(True, "well done.")
UNANSWERED = Feedback(None, "not answered yet: replace the None (or the stub) with your answer.")

# An answer to 2 significant figures is off by up to 5% (1.05 -> 1.1), to 3 by up to 0.5%: 2%
# accepts any careful 3-figure answer and most 2-figure ones, and still tells 10^9 from 2^30
# (7%) and every other typical slip apart. Exercises that want an exact count say so.
DEFAULT_REL_TOL = 0.02

# Printed verdicts are wrapped to this many characters, which fit a notebook and a slide.
OUTPUT_WIDTH = 88


def wrong(hint: str) -> Feedback:
    """A wrong answer, with a hint that says what is probably wrong."""
    return Feedback(False, f"not quite. {hint}")


def tolerance_text(rel_tol: float) -> str:
    """How close an answer must be, in words: "exactly" or "within 2%"."""
    if rel_tol == 0:
        return "exactly"
    percent = rel_tol * 100
    return f"within {percent:.2g}%" if percent >= 0.01 else f"to a relative {rel_tol:.0e}"


def difference_text(value: float, expected: float) -> str:
    """How far `value` is from `expected`, in words: "3.4% too large", "about 12x too small"."""
    ratio = value / expected
    if ratio < 0:
        return "the sign is wrong"
    if ratio == 0 or not math.isfinite(ratio):  # so far off that the ratio under- or overflows
        return f"far too {'small' if ratio == 0 else 'large'}"
    if 0.5 <= ratio <= 2:
        percent = abs(ratio - 1) * 100
        shown = f"{percent:.2g}" if percent < 10 else f"{percent:.0f}"
        return f"{shown}% too {'large' if ratio > 1 else 'small'}"
    times = ratio if ratio > 1 else 1 / ratio
    return f"about {times:.3g}x too {'large' if ratio > 1 else 'small'}"


def as_number(answer: Any, unit: str = "") -> float | Feedback:
    """`answer` as a finite float, or the Feedback that says why it is not one."""
    in_unit = f" (in {unit})" if unit else ""
    if answer is None or answer is Ellipsis:
        return UNANSWERED
    if isinstance(answer, str):
        return wrong(f"got the text {answer!r}; give a number{in_unit}, without quotes.")
    kind = type(answer).__name__
    a_kind = f"{'an' if kind[0].lower() in 'aeiou' else 'a'} {kind}"
    if isinstance(answer, bool) or not hasattr(answer, "__float__"):
        return wrong(f"expected a number{in_unit}, got {a_kind}.")
    try:
        value = float(answer)
    except (TypeError, ValueError, OverflowError):  # a tensor or array of several numbers
        return wrong(f"expected one number{in_unit}, got {a_kind} that is not a single number.")
    if math.isnan(value):
        return wrong("got nan (not a number): something computed 0/0, inf - inf or used an "
                     "undefined value; print the pieces of your formula to find it.")
    if math.isinf(value):
        return wrong(f"got {value}: something overflowed or divided by zero; give a finite "
                     f"number{in_unit}.")
    return value


def check_number(
    answer: Any,
    expected: float,
    *,
    rel_tol: float = DEFAULT_REL_TOL,
    hints: dict[float, str] | None = None,
    unit: str = "",
) -> Feedback:
    """Check a number within `rel_tol`; `hints` maps typical wrong answers to what went wrong."""
    value = as_number(answer, unit)
    if isinstance(value, Feedback):
        return value
    in_unit = f" (in {unit})" if unit else ""
    if math.isclose(value, expected, rel_tol=rel_tol):
        return CORRECT
    # A typical slip is recognized as closely as a right answer would be (at least to 0.1%).
    for typical, hint in (hints or {}).items():
        if math.isclose(value, typical, rel_tol=max(rel_tol, 1e-3)):
            return wrong(hint)
    if not expected or not value:
        return wrong(f"expected {'zero' if not expected else 'a nonzero number'}{in_unit}.")
    ratio = value / expected
    for factor, slip in ((2**30 / 1e9, "GB (10^9 bytes) and GiB (2^30 bytes)"),
                         (1e9 / 2**30, "GiB (2^30 bytes) and GB (10^9 bytes)")):
        if math.isclose(ratio, factor, rel_tol=1e-3):
            return wrong(f"{difference_text(value, expected)}: mixing up {slip}?")
    if ratio and math.isfinite(ratio):  # a ratio that overflows or underflows says nothing
        exponent = round(math.log10(abs(ratio)))
        if exponent and math.isclose(abs(ratio), 10.0**exponent, rel_tol=1e-3):
            return wrong(f"off by a factor of 10^{exponent}: check your units{in_unit}.")
    accepted = ("only the exact value is accepted" if rel_tol == 0
                else f"answers {tolerance_text(rel_tol)} are accepted")
    return wrong(f"{difference_text(value, expected)} ({accepted}); recheck each factor{in_unit}.")


def check_count(
    answer: Any, expected: int, *, hints: dict[int, str] | None = None, unit: str = ""
) -> Feedback:
    """Check a count that must be exact (parameters, bytes, windows); hints match exactly.

    check_number matches a hint within the answer's tolerance (2% by default), so a count one
    term short (a head of D parameters among 10^8), or two slips 0.1% apart (262,144 and
    262,400), would get the wrong hint for a rounded answer; here only the slip itself does.
    """
    value = as_number(answer, unit)
    if isinstance(value, Feedback):
        return value
    in_unit = f" (in {unit})" if unit else ""
    if not value.is_integer():
        return wrong(f"got {value:g}: a count{in_unit} is a whole number.")
    count = int(value)
    if count == expected:
        return CORRECT
    if count in (hints or {}):
        return wrong(hints[count])
    if count == 0:
        return wrong(f"got 0: expected a nonzero, positive count{in_unit}.")
    off = difference_text(count, expected)
    if count < 0:
        return wrong(f"{off}: a count{in_unit} is positive.")
    if math.isclose(count, expected, rel_tol=DEFAULT_REL_TOL):
        return wrong(f"close ({off}), but a count must be exact: add up every term instead "
                     "of rounding.")
    ratio = count / expected
    exponent = round(math.log10(ratio))
    if exponent and math.isclose(ratio, 10.0**exponent, rel_tol=1e-3):
        return wrong(f"off by a factor of 10^{exponent}: give the count itself{in_unit}, not "
                     "in thousands or millions.")
    return wrong(f"{off}; recount{in_unit}: the exact number is wanted.")


class UnknownExerciseError(NotFoundError):
    """A notebook has no exercise of this number."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number, a short title, the answer it wants, and its checker."""

    number: int
    title: str
    checker: Callable[[Any], Feedback]
    wants: str = ""  # the form and precision of the answer, e.g. "a number of days, within 2%"


# A mark and a word: the word still reads where the font has no emoji (a projector, a terminal).
MARKS = {True: "✅ [correct]", False: "❌ [wrong]", None: "⏳ [to do]"}


class Exercises:
    """The exercises of one notebook, checked by number."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        self.exercises: dict[int, Exercise] = {}

    def checker(self, number: int, title: str, *, wants: str = "") -> Callable:
        """Register the decorated function as the checker of exercise `number`.

        `wants` says what to answer and how precisely ("a number of days, within 2%"); it is
        shown with every verdict but a correct one.
        """
        if number in self.exercises:
            raise ValueError(f"exercise {self.notebook}.{number} is registered twice")

        def register(fn: Callable[[Any], Feedback]) -> Callable[[Any], Feedback]:
            self.exercises[number] = Exercise(number, title, fn, wants)
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
        if isinstance(answer, float) and not math.isfinite(answer):
            return as_number(answer)  # no exercise wants nan or inf: say where they come from
        try:
            return self.exercises[number].checker(answer)
        except Exception as e:  # noqa: BLE001 (a student's broken code must give a hint, not a traceback)
            return wrong(f"checking your answer raised {type(e).__name__}: {e}")

    def check(self, number: int, answer: Any) -> None:
        """Print the verdict on `answer` for exercise `number`."""
        verdict = self.feedback(number, answer)
        exercise = self.exercises[number]
        message = verdict.message
        if verdict.correct is not True and exercise.wants:
            message += f" Wanted: {exercise.wants}."
        line = f"{MARKS[verdict.correct]} Exercise {self.notebook}.{number} ({exercise.title}): "
        # Wrapped here, between words: a notebook wraps a long output line anywhere, mid-word.
        print(textwrap.fill(line + message, width=OUTPUT_WIDTH, subsequent_indent="    "))
