"""`make gpu`: the whole course checked on a CUDA GPU, in the current Python environment.

    python -m course_tools.gpu_run [--time-limit SECONDS]

1. the unit tests, at the small sizes; 2. every notebook under nbval, one at a time and timed (kernel start
included), at the sizes this GPU allows, against the same stored outputs as on a CPU; 3. the
benchmark report (`course_tools.bench`) with those times, into build/bench/. Everything runs
under one time limit (default 8 minutes): a step that would overrun is stopped, and what was
measured is kept. Without a CUDA GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
DEFAULT_TIME_LIMIT = 480.0
BENCH_RESERVE = 90.0  # seconds kept for the benchmark report after the tests
UNIT_SHARE = 0.3  # of the time limit, at most, for the unit tests: the notebooks come first
STOP_GRACE = 10.0  # seconds a stopped step may take to end (SIGTERM, then SIGKILL)
NO_GPU = 2  # exit status: nothing to do on this machine
# What the tests and notebooks import beside torch (each module has its package's name).
NEEDED_MODULES = ("pytest", "nbval", "ipykernel", "nbclient", "nbformat", "nbconvert", "einops",
                  "jaxtyping", "beartype", "matplotlib", "numpy")
# The sanitizers and the kernel (this Python) come from the repository's conftest.py.
NBVAL_FLAGS = ["--nbval", "--nbval-cell-timeout=600"]


def _descendants(pid: int) -> list[int]:
    """Every process started by `pid`, at any depth (from /proc; empty where there is none).

    Jupyter starts each kernel in a session of its own, so killing a process group does not
    reach it: the kernels are found by parentage instead.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (name) state ppid ...": the name may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """Stop `process`, its group and everything it started: SIGTERM, then SIGKILL what is left."""
    everyone = _descendants(process.pid)

    def send(sig: signal.Signals) -> None:
        for pid in everyone:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    send(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    time.sleep(1)  # the kernels' own shutdown, after their parent's
    send(signal.SIGKILL)
    process.wait()


def run_with_limit(command: list[str], seconds: float,
                   env: dict[str, str] | None = None) -> tuple[int | None, float]:
    """Run `command` from the repository root; (exit status or None if stopped, seconds taken).

    When the time is up, the command is stopped with everything it started (the notebooks'
    kernels too). `env` adds to the environment.
    """
    started = time.monotonic()
    if seconds <= 0:
        return None, 0.0
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               env={**os.environ, **(env or {})})
    try:
        status = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        _stop(process)
        return None, time.monotonic() - started
    return status, time.monotonic() - started


def missing_modules() -> list[str]:
    """The pip names of the packages the GPU run needs that this Python cannot import."""
    return [module for module in NEEDED_MODULES if importlib.util.find_spec(module) is None]


def no_gpu_message(torch_version: str) -> str:
    return (f"make gpu: no CUDA GPU here (torch {torch_version}), so nothing was run. On a GPU it "
            "runs the unit tests, nbval over every notebook at the GPU's sizes (timed), and the "
            "benchmark report into build/bench/. Here, run `make test`, or "
            "`python -m course_tools.bench --quick` for the report at CPU sizes.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.gpu_run",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, metavar="SECONDS",
                        help=f"for everything together (default {DEFAULT_TIME_LIMIT:.0f})")
    args = parser.parse_args(argv)
    if not args.time_limit > 0:
        parser.error(f"--time-limit must be a number of seconds > 0, got {args.time_limit}")
    deadline = time.monotonic() + args.time_limit  # from the start: importing torch counts

    try:
        import torch  # after argument parsing: --help works without it
    except ImportError:
        print(no_gpu_message(f"missing from {sys.executable}; the GPU run uses the current "
                             "Python environment, so activate the one with CUDA torch"))
        return NO_GPU
    if not torch.cuda.is_available():
        print(no_gpu_message(torch.__version__))
        return NO_GPU
    from lecture_utils.device import SCALE_ENV
    missing = missing_modules()
    if missing:
        print(f"make gpu: this Python ({sys.executable}) lacks {', '.join(missing)}; install "
              f"them (`python3 -m pip install {' '.join(missing)}`; without network, from wheels "
              "downloaded elsewhere: `pip install --no-index --find-links DIR ...`) and run it "
              "again.")
        return 1

    OUT.mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-m", "pytest", "-q"]
    # A GPU machine's own Python rarely has the course installed (`pip install -e .` needs the
    # network for its build backend): conftest.py then puts this checkout on the kernels' path.
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    print(f"make gpu: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"time limit {args.time_limit:.0f} s", flush=True)

    # The unit tests at the small sizes (some execute the student copies of the notebooks); the
    # notebooks themselves, next, at the GPU's.
    print("\n== unit tests", flush=True)
    unit_status, unit_seconds = run_with_limit(
        [*python, "--ignore=tests/browser", "tests"],
        min(UNIT_SHARE * args.time_limit, deadline - time.monotonic() - BENCH_RESERVE),
        env={**env, SCALE_ENV: "small"})
    print(f"unit tests: {_result(unit_status)} in {unit_seconds:.0f} s", flush=True)

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    times: dict[str, dict[str, object]] = {}
    for notebook in notebooks:
        left = deadline - time.monotonic() - BENCH_RESERVE
        if left <= 0:
            times[notebook.stem] = {"seconds": 0.0, "result": "not run: time limit"}
            continue
        print(f"\n== {notebook.name}", flush=True)
        status, seconds = run_with_limit([*python, *NBVAL_FLAGS, str(notebook)], left, env)
        times[notebook.stem] = {"seconds": seconds, "result": _result(status)}
        print(f"{notebook.name}: {_result(status)} in {seconds:.1f} s", flush=True)
    all_passed = all(entry["result"] == "passed" for entry in times.values())
    summary = {"notebooks": times, "all_passed": all_passed,
               "total_seconds": sum(float(e["seconds"]) for e in times.values())
               if all_passed else None}
    times_path = OUT / "notebook_times.json"
    times_path.write_text(json.dumps(summary, indent=1) + "\n")

    print("\n== benchmark report", flush=True)
    left = deadline - time.monotonic()
    bench_status = None
    if left > 30:  # the report stops itself between parts; the limit here backstops it
        bench_status, _ = run_with_limit(
            [sys.executable, "-m", "course_tools.bench", "--out", str(OUT), "--notebook-times",
             str(times_path), "--time-limit", f"{left - 30:.0f}"], left - STOP_GRACE, env)

    print(f"\nmake gpu: unit tests {_result(unit_status)}; notebooks "
          f"{'all passed' if all_passed else 'NOT all passed'}; benchmark report "
          f"{_result(bench_status) if left > 30 else 'not run: time limit'} "
          "(build/bench/report.md). Put its figures into the README with "
          "`make readme-gpu CURRENT_ENV=1`.")
    return 0 if unit_status == 0 and all_passed and bench_status == 0 else 1


def _result(status: int | None) -> str:
    if status is None:
        return "stopped: time limit"
    return "passed" if status == 0 else f"FAILED (exit status {status})"


if __name__ == "__main__":
    sys.exit(main())
