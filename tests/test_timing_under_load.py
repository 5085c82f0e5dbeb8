"""Timing demos stay true on a busy laptop: run with a busy process on every core, each notebook
that compares timings prints conclusions that agree with the numbers it prints beside them.

A timing is printed as `name: 1.23 ms (1.20-1.31)` (lecture_utils.flops.Timing.format: the median
and the quartiles) and compared by lecture_utils.flops.compare_timings, whose sentences this test
parses and checks against those numbers. The other conclusions drawn from timings (a size
sweep's trend, the backward/forward ratio) are chosen by helpers from the numbers they print,
and their unit tests feed them adversarial measurements; here they must simply run under load.
"""

import itertools
import json
import multiprocessing
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))

NUMBER = r"[\d.]+(?:e[+-]?\d+)?"
TIMING = re.compile(rf"(?P<name>[^:\n]+): (?P<median>{NUMBER}) (?P<unit>s|ms|us) "
                    rf"\((?P<low>{NUMBER})-(?P<high>{NUMBER})\)")
FASTER = re.compile(r"is (?P<ratio>[\d.]+)x faster than .* \(their spreads do not overlap\)")
AGREE = re.compile(r"agree within their spread \(medians (?P<ratio>[\d.]+)x apart\)")
SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
ROUNDING = 0.03  # medians and ratios are printed to 3 significant figures


def timings(text: str) -> dict[str, tuple[float, float, float]]:
    """The timings printed in `text`: name -> (median, low, high) in seconds."""
    found = {}
    for m in TIMING.finditer(text):
        scale = SCALE[m["unit"]]
        found[m["name"].strip()] = tuple(float(m[k]) * scale for k in ("median", "low", "high"))
    return found


def contradictions(text: str) -> list[str]:
    """Every compare_timings sentence in `text` that its printed timings do not bear out."""
    known = timings(text)
    problems = []
    for line in text.splitlines():
        faster, agree = FASTER.search(line), AGREE.search(line)
        if not (faster or agree):
            continue
        pairs = [(a, b) for a, b in itertools.permutations(known, 2)
                 if (f"{a} is " in line and f"faster than {b} (" in line)
                 or (f"{a} and {b} agree" in line)]
        if not pairs:
            problems.append(f"a conclusion about timings this cell does not print: {line!r}")
            continue
        (a_median, a_low, a_high), (b_median, b_low, b_high) = known[pairs[0][0]], known[pairs[0][1]]
        overlap = a_low <= b_high and b_low <= a_high
        if faster:
            ratio = b_median / a_median
            if overlap or a_median >= b_median:
                problems.append(f"says faster, but the printed spreads overlap or invert: {line!r}")
        else:
            ratio = max(a_median, b_median) / min(a_median, b_median)
            if not overlap:
                problems.append(f"says they agree, but the printed spreads are apart: {line!r}")
        printed = float((faster or agree)["ratio"])
        if abs(printed - ratio) > ROUNDING * ratio:
            problems.append(f"prints {printed}x but its timings give {ratio:.3g}x: {line!r}")
    return problems


def test_the_checker_catches_a_conclusion_its_numbers_contradict():
    good = ("sync: 1.00 ms (0.98-1.02)\nno sync: 0.500 ms (0.49-0.51)\n"
            "no sync is 2.00x faster than sync (their spreads do not overlap)\n")
    assert contradictions(good) == []
    lying = good.replace("no sync: 0.500 ms (0.49-0.51)", "no sync: 16.0 ms (15.0-17.0)")
    assert contradictions(lying)
    agree = "a: 1.00 ms (0.9-1.2)\nb: 1.10 ms (1.0-1.3)\na and b agree within their spread " \
            "(medians 1.10x apart)\n"
    assert contradictions(agree) == []
    assert contradictions(agree.replace("b: 1.10 ms (1.0-1.3)", "b: 9.00 ms (8.9-9.1)"))
    assert contradictions("x is 2.00x faster than y (their spreads do not overlap)")
    assert timings("a: 1.2e-05 s (1.1e-05-1.3e-05)") == {"a": (1.2e-05, 1.1e-05, 1.3e-05)}


def stored_text(path: Path) -> list[str]:
    """Each code cell's printed text, as stored in the notebook."""
    return ["".join("".join(o.get("text", "")) for o in c.get("outputs", []))
            for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def timing_notebooks() -> list[Path]:
    """The notebooks whose stored outputs print timings (a median and its spread)."""
    return [p for p in NOTEBOOKS if any(TIMING.search(t) for t in stored_text(p))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_conclusions_agree_with_their_numbers(path):
    for text in stored_text(path):
        assert not contradictions(text), contradictions(text)


def _spin() -> None:
    while True:
        pass


@pytest.mark.slow  # each timing notebook again, on a loaded machine: `make test-slow`
def test_timing_notebooks_hold_with_every_core_busy():
    paths = timing_notebooks()
    assert paths, "no notebook prints a timing comparison"
    spinners = [multiprocessing.Process(target=_spin, daemon=True)
                for _ in range(os.cpu_count() or 2)]
    for spinner in spinners:
        spinner.start()
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            for cell in nb.cells:
                if cell.cell_type == "code":
                    text = "".join(o.get("text", "") for o in cell.outputs)
                    assert not contradictions(text), f"{path.name}: {contradictions(text)}"
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()
