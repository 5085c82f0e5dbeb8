"""The lecture path through each notebook: what is presented live, what is left for reading, and
how long the presented part takes; and the README's lecture plan, written from them.

    python -m course_tools.lecture readme            # rewrite the plan in README.md
    python -m course_tools.lecture readme --check    # exit 1 if the plan in README.md is stale

A markdown heading cell (`##` or `###`) tagged `optional`, whose heading starts "Optional:",
starts an optional section; it runs to the next heading of the same or a higher level. The
lecture path is every cell outside optional sections, less the Colab install cell and the
exercises' solutions and checks (the questions stay: they are the homework).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from course_tools.course import write_atomically

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
OPTIONAL_TAG = "optional"
OPTIONAL_PREFIX = "Optional:"
COLAB_TAG = "colab-setup"
SOLUTION_TAG = "solution"
CHECK_CALL = "EXERCISES.check("
BEGIN_MARK = "<!-- lecture-plan:begin -->"
END_MARK = "<!-- lecture-plan:end -->"
COMMAND = "python -m course_tools.lecture readme"

# The time rule, stated in the README beside the plan: presenting the lecture path takes a
# minute per WORDS_PER_MINUTE words of prose and per CODE_LINES_PER_MINUTE lines of code, plus
# MINUTES_PER_FIGURE a figure, rounded to ROUND_TO minutes. Chosen to give, for the notebooks as
# they stood when the plan was first written from them, about the minutes it had by hand.
WORDS_PER_MINUTE = 100  # read out and explained: slower than speech
CODE_LINES_PER_MINUTE = 50
MINUTES_PER_FIGURE = 2
ROUND_TO = 5
SESSION_MINUTES = 80
FIGURE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


@dataclass(frozen=True)
class Section:
    """A `##` or `###` section of a notebook: its heading and the cells it spans."""

    title: str
    level: int
    start: int
    stop: int  # one past its last cell
    optional: bool  # tagged itself, or inside an optional section


@dataclass(frozen=True)
class NotebookPlan:
    """What the README says about one notebook."""

    path: Path
    title: str
    minutes: int
    lecture: list[str]  # the `##` sections presented
    optional: list[str]  # the sections left for reading


def course_notebooks() -> list[Path]:
    """The course's notebooks, as the Makefile's `notebooks/*.ipynb` finds them (no dotfiles)."""
    return sorted((ROOT / "notebooks").glob("[!.]*.ipynb"))


def source(cell: dict) -> str:
    """A cell's source as one string (stored notebooks keep it as a list of lines)."""
    text = cell.get("source", "")
    return text if isinstance(text, str) else "".join(text)


def tags(cell: dict) -> list[str]:
    """The cell's tags."""
    return cell.get("metadata", {}).get("tags", [])


def heading(cell: dict) -> tuple[int, str] | None:
    """(level, title) of a markdown cell that starts with a heading, else None."""
    if cell["cell_type"] != "markdown":
        return None
    match = re.match(r"(#{1,6}) +(.+)", source(cell).lstrip())
    if not match:
        return None
    return len(match.group(1)), match.group(2).strip()


def is_optional_heading(cell: dict) -> bool:
    """A `##` or `###` heading tagged `optional`: the start of an optional section."""
    found = heading(cell)
    return found is not None and found[0] in (2, 3) and OPTIONAL_TAG in tags(cell)


def section_end(cells: list[dict], start: int, level: int) -> int:
    """One past the last cell of the section whose heading, of `level`, is at `start`."""
    for i in range(start + 1, len(cells)):
        found = heading(cells[i])
        if found and found[0] <= level:
            return i
    return len(cells)


def optional_cells(nb: dict) -> set[int]:
    """Indices of the cells in optional sections."""
    cells = nb["cells"]
    out: set[int] = set()
    for i, cell in enumerate(cells):
        if is_optional_heading(cell):
            out.update(range(i, section_end(cells, i, heading(cell)[0])))
    return out


def is_homework(cell: dict) -> bool:
    """An exercise's worked solution or its check: left out of the lecture."""
    return SOLUTION_TAG in tags(cell) or (cell["cell_type"] == "code"
                                          and CHECK_CALL in source(cell))


def lecture_cells(nb: dict) -> list[int]:
    """Indices of the cells on the lecture path, in order."""
    optional = optional_cells(nb)
    return [i for i, cell in enumerate(nb["cells"]) if i not in optional
            and COLAB_TAG not in tags(cell) and not is_homework(cell)]


def lecture_notebook(nb: dict) -> dict:
    """A copy of notebook `nb` holding only its lecture path (for the lecture deck)."""
    out = copy.deepcopy(nb)
    out["cells"] = [out["cells"][i] for i in lecture_cells(nb)]
    return out


def sections(nb: dict) -> list[Section]:
    """Every `##` and `###` section of `nb`, in order, each marked optional or not."""
    cells = nb["cells"]
    optional = optional_cells(nb)
    out = []
    for i, cell in enumerate(cells):
        found = heading(cell)
        if found and found[0] in (2, 3):
            level, title = found
            out.append(Section(title, level, i, section_end(cells, i, level), i in optional))
    return out


def plain_title(title: str) -> str:
    """A section title without its "Optional:" prefix."""
    return title.removeprefix(OPTIONAL_PREFIX).strip()


def convention_problems(nb: dict) -> list[str]:
    """Where `nb` breaks the optional-section convention: tag and "Optional:" go together."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        found = heading(cell)
        tagged = OPTIONAL_TAG in tags(cell)
        named = bool(found) and found[1].startswith(OPTIONAL_PREFIX)
        if tagged and not (found and found[0] in (2, 3)):
            problems.append(f"cell {i}: tagged {OPTIONAL_TAG!r} but not a ## or ### heading")
        elif tagged and not named:
            problems.append(f"cell {i}: tagged {OPTIONAL_TAG!r}; its heading should start "
                            f"{OPTIONAL_PREFIX!r}: {found[1]!r}")
        elif named and not tagged:
            problems.append(f"cell {i}: {found[1]!r} needs the tag {OPTIONAL_TAG!r}")
    return problems


def figures(cell: dict) -> int:
    """How many figures a code cell's stored outputs show."""
    return sum(any(kind in out.get("data", {}) for kind in FIGURE_TYPES)
               for out in cell.get("outputs", []))


def estimate_minutes(nb: dict) -> int:
    """Minutes to present the lecture path of `nb`, by the time rule (at least ROUND_TO)."""
    words = lines = shown = 0
    for i in lecture_cells(nb):
        cell = nb["cells"][i]
        if cell["cell_type"] == "markdown":
            words += len(source(cell).split())
        elif cell["cell_type"] == "code":
            lines += sum(1 for line in source(cell).splitlines() if line.strip())
            shown += figures(cell)
    minutes = (words / WORDS_PER_MINUTE + lines / CODE_LINES_PER_MINUTE
               + shown * MINUTES_PER_FIGURE)
    return max(ROUND_TO, ROUND_TO * round(minutes / ROUND_TO))


def notebook_plan(path: Path) -> NotebookPlan:
    """The lecture plan of the notebook at `path`."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    titles = [heading(c) for c in nb["cells"] if heading(c) and heading(c)[0] == 1]
    found = sections(nb)
    return NotebookPlan(
        path=path,
        title=titles[0][1] if titles else path.stem,
        minutes=estimate_minutes(nb),
        lecture=[s.title for s in found if s.level == 2 and not s.optional],
        optional=[plain_title(s.title) for s in found if is_optional_heading(nb["cells"][s.start])],
    )


# A wrapped line must not start with what markdown reads as a new block ("1. ", "- ", "#"):
# such a word is glued to the one before it while wrapping.
_BLOCK_START = re.compile(r" (?=(?:\d+[.)]|[-+*>]|#+)(?: |$))")
_GLUE = "\x00"


def wrap_markdown(text: str, first: str = "", rest: str = "", width: int = 100) -> list[str]:
    """`text` wrapped at `width` columns, never starting a line with a block marker."""
    lines = textwrap.wrap(_BLOCK_START.sub(_GLUE, text), width=width, initial_indent=first,
                          subsequent_indent=rest, break_long_words=False,
                          break_on_hyphens=False)
    return [line.replace(_GLUE, " ") for line in lines]


def link(path: Path, readme: Path) -> str:
    """`path` relative to the README's folder, as a markdown link target."""
    try:
        return path.resolve().relative_to(readme.resolve().parent).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def sentence(text: str) -> str:
    """`text` ending in a full stop, unless it already ends in one, a ? or a !."""
    return text if text.endswith((".", "?", "!")) else text + "."


def notebook_entry(plan: NotebookPlan, readme: Path) -> list[str]:
    """The plan's list item for one notebook: time, sections presented, sections for reading."""
    presented = "; ".join(plan.lecture) or "(no sections)"
    lines = wrap_markdown(f"**[{plan.title}]({link(plan.path, readme)})**, about {plan.minutes} "
                          f"min: {sentence(presented)}", first="- ", rest="  ")
    if plan.optional:
        lines += wrap_markdown(sentence(f"For reading: {'; '.join(plan.optional)}"),
                               first="  - ", rest="    ")
    return lines


def plan_block(notebooks: list[Path], readme: Path = README) -> str:
    """The generated lecture plan, markers included."""
    plans = [notebook_plan(p) for p in sorted(notebooks, key=lambda p: p.name)]
    total = sum(p.minutes for p in plans)
    sessions = math.ceil(total / SESSION_MINUTES)
    closing = (f"In all about {total} minutes, or {sessions} sessions of up to {SESSION_MINUTES} "
               "minutes. Each time counts the lecture path only: a minute per "
               f"{WORDS_PER_MINUTE} words of prose and per {CODE_LINES_PER_MINUTE} lines of code, "
               f"{MINUTES_PER_FIGURE} minutes per figure, rounded to {ROUND_TO} minutes.")
    lines = [BEGIN_MARK, f"<!-- Written by `{COMMAND}` (make slides runs it) from the",
             "     notebooks: edit them, not this block. -->", ""]
    for plan in plans:
        lines += notebook_entry(plan, readme)
    return "\n".join([*lines, "", *wrap_markdown(closing), END_MARK])


class PlanMarkersError(ValueError):
    """The README lacks the lecture-plan markers, or has them out of order."""


def replace_block(text: str, block: str) -> str:
    """`text` with the part from BEGIN_MARK to END_MARK (both included) replaced by `block`."""
    begin, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if begin < 0 or end < begin:
        raise PlanMarkersError(f"no {BEGIN_MARK} ... {END_MARK} block in the README: put the "
                               "markers around the lecture plan")
    return text[:begin] + block + text[end + len(END_MARK):]


def refresh_readme(notebooks: list[Path], readme: Path = README, check: bool = False) -> bool:
    """Rewrite the plan in `readme` (or with `check`, only compare); True if it was current."""
    text = readme.read_text(encoding="utf-8")
    updated = replace_block(text, plan_block(notebooks, readme))
    if updated == text:
        return True
    if not check:
        write_atomically(readme, updated)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    readme = sub.add_parser("readme", help="write the lecture plan into README.md")
    readme.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebook in notebooks/")
    readme.add_argument("--readme", type=Path, default=README)
    readme.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if the plan is stale")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    try:
        current = refresh_readme(notebooks, args.readme, check=args.check)
    except PlanMarkersError as error:
        print(f"{args.readme}: {error}", file=sys.stderr)
        return 2
    if args.check and not current:
        print(f"{args.readme}: the lecture plan is stale (the notebooks changed): run "
              f"`{COMMAND}` (make slides does) and commit README.md", file=sys.stderr)
        return 1
    print(f"{args.readme}: lecture plan {'already current' if current else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
