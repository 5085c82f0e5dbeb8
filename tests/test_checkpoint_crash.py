"""save_checkpoint under real crashes: a process saving in a loop, SIGKILLed at random moments."""

from __future__ import annotations

import multiprocessing
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lecture_utils.training import read_checkpoint, save_checkpoint

ROUNDS = 20
# nn.Linear(900, 900) with AdamW state: 0.8M parameters x 3 tensors x 4 bytes, a 10 MB file
# that takes ~40 ms to save here (20 MB doubled the test's time on a 2-core machine).
WIDTH = 900

# Each round forks the test process (its model and optimizer come along, already built): a fresh
# interpreter per round would spend ~2 s importing torch, 20 times over.
pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="needs fork() to start a saving process per round cheaply; only Linux forks a "
        "process that has imported torch safely (macOS and Windows would start 20 interpreters, "
        "~40 s)",
    ),
    # Python 3.12+ warns about fork() when other tests left threads running; the child only
    # saves files (torch.save, hashlib, os), which takes none of their locks.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def _model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A model whose AdamW state exists (one step taken), so all of it is saved."""
    model = nn.Linear(WIDTH, WIDTH)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, WIDTH)).sum().backward()
    optimizer.step()
    return model, optimizer


def _temp_files(directory: Path, name: str) -> list[Path]:
    """The temp files save_checkpoint makes for checkpoint `name` (.NAME.XXXXXXXX.tmp)."""
    return [p for p in directory.iterdir() if p.name.startswith(f".{name}.")
            and p.name.endswith(".tmp")]


def _save_until_killed(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                       first_step: int, progress: Any) -> None:
    """The child: save steps first_step, first_step + 1, ... recording each start and finish."""
    torch.set_num_threads(1)
    step = first_step
    while True:
        progress[0] = step  # started
        save_checkpoint(path, model, optimizer, step)
        progress[1] = step  # completed: os.replace has returned
        step += 1


def _seconds_per_save(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Seconds one save of this model takes on this machine, after a first one to warm up."""
    directory.mkdir()
    save_checkpoint(directory / "warm_up.pt", model, optimizer, 0)
    start = time.perf_counter()
    save_checkpoint(directory / "warm_up.pt", model, optimizer, 1)
    return time.perf_counter() - start


def test_checkpoint_survives_sigkill_at_random_moments(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _sigkill_rounds(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _sigkill_rounds(tmp_path: Path) -> None:
    """ROUNDS times: fork a child that saves in a loop, SIGKILL it, check what it left."""
    fork = multiprocessing.get_context("fork")
    model, optimizer = _model_and_optimizer()
    save_seconds = _seconds_per_save(tmp_path / "calibration", model, optimizer)
    directory = tmp_path / "run"
    directory.mkdir()
    path = directory / "c.pt"
    # Shared memory without a lock: a child killed while holding a lock would hang the parent.
    progress = fork.RawArray("q", [-1, -1])  # last step started, last step completed
    delays = random.Random(0)
    rounds_that_left_a_temp_file = 0
    for _ in range(ROUNDS):
        child = fork.Process(target=_save_until_killed, daemon=True,
                             args=(path, model, optimizer, progress[0] + 1, progress))
        child.start()
        try:
            # Kill at a moment spread over the first two saves: removing a stale temp file,
            # torch.save, fsync, rename, fsync of the directory; watch the temp files meanwhile.
            deadline = time.monotonic() + delays.uniform(0, 2 * save_seconds)
            while time.monotonic() < deadline:
                assert len(_temp_files(directory, path.name)) <= 1
                time.sleep(0.002)
        finally:
            child.kill()
            child.join()
        assert child.exitcode == -signal.SIGKILL, f"the saving child exited: {child.exitcode}"
        started, completed = progress
        temp_files = _temp_files(directory, path.name)
        assert len(temp_files) <= 1
        rounds_that_left_a_temp_file += len(temp_files)
        if completed >= 0 or path.exists():
            # The file is the last completed save or the one cut short, if its rename happened.
            assert completed <= read_checkpoint(path)["step"] <= started
    assert rounds_that_left_a_temp_file > 0, "no kill landed during a save: make the delays longer"
    assert progress[1] > 0, "no save ever completed: make the delays longer"
    save_checkpoint(path, model, optimizer, progress[0] + 1)  # and the next save cleans up
    assert _temp_files(directory, path.name) == []
    assert read_checkpoint(path)["step"] == progress[0] + 1
