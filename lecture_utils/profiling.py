"""Notebook 10: measuring instead of guessing: torch.profiler and MemTracker against the napkin.

The course predicts a training step's FLOPs and bytes with formulas (notebooks 03-09). This
module runs the same step under PyTorch's own instruments and lines the numbers up:

- FLOPs: the napkin's 6 x parameters x tokens, the course's exact formula, FlopCounterMode, and
  torch.profiler's with_flops;
- memory: the course's prediction of the peak and MemTracker's peak, by category (parameters,
  gradients, optimizer state, activations, temporaries, inputs).

Every difference between two of them has an exact cause, which the notebook asserts. Around that:
reading a profile (self vs total, the trace file), Python overhead, a planted memory leak, and
on a GPU the CUDA kernel timeline and the caching allocator's memory snapshot.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import pickle
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils.device import as_device, parse_device, synchronize
from lecture_utils.exercises import (
    CORRECT,
    DEFAULT_REL_TOL,
    UNANSWERED,
    Exercises,
    Feedback,
    check_number,
    tolerance_text,
    wrong,
)
from lecture_utils.flops import Timing, time_it
from lecture_utils.hardware import NotFoundError
from lecture_utils.models import Cruncher, cruncher_num_parameters
from lecture_utils.optimizers import (
    TIMELINE_PARTS,
    _NewStorageTracker,
    make_optimizer,
    train_step,
    training_memory_timeline,
)
from lecture_utils.transformer import (
    INDEX_BYTES,
    Transformer,
    TransformerConfig,
    _check_config,
    _check_flags,
    _check_sizes,
    activation_bytes,
    check_count,
    language_model_loss,
    num_parameters,
    plain_log_ticks,
    preset,
    six_n_t,
    training_flops,
    training_memory,
)

ROOT = Path(__file__).resolve().parent.parent
PROFILE_DIR = ROOT / "build" / "profiles"  # traces and snapshots: generated, never committed
FP32_BYTES = 4

# MemTracker's categories, in the order the notebook shows them.
CATEGORIES = ("Parameter", "Buffer", "Gradient", "Optstate", "Activation", "Temp", "Other")

# Lines the profiler's C++ side writes to stderr that say nothing about the program: Kineto's
# start/stop markers (with a timestamp), and the allocator's note that a block made before the
# profile was freed during it. In a notebook they would land in the cell's output.
PROFILER_CHATTER = (
    "SyncActivityProfilerHandler",
    "Memory block of unknown size was allocated before the profiling started",
)


def _check_callable(name: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a function to call (no arguments), got "
                        f"{type(fn).__name__}")


def _check_profile(prof: Any) -> None:
    if not isinstance(prof, torch_profile):
        raise TypeError(f"prof must be a finished profile, as profile_once(fn) returns, got "
                        f"{type(prof).__name__}")


def _check_stats(stats: Any) -> None:
    if not isinstance(stats, list) or not all(isinstance(r, OperatorStats) for r in stats):
        raise TypeError(f"stats must be the list operator_stats(prof) returns, got "
                        f"{type(stats).__name__}")


class UnknownOperatorError(NotFoundError):
    """No operator of this name in a profile."""


# ---------------------------------------------------------------------------------------------
# torch.profiler, quietly
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def without_profiler_chatter() -> Iterator[None]:
    """Run the block with file descriptor 2 (stderr) captured; pass on all but PROFILER_CHATTER.

    The lines come from C++ (Kineto, the CPU allocator), below Python's sys.stderr, so only the
    file descriptor itself can catch them.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(c in line for c in PROFILER_CHATTER)]
            if kept:
                sys.stderr.write("".join(kept))


def profile_once(fn: Callable[[], Any], *, device: torch.device | str = "cpu",
                 flops: bool = False, memory: bool = False) -> torch_profile:
    """Run fn() once under torch.profiler and return the profiler (a finished profile).

    CPU operators always; on a CUDA device, the GPU kernels too. flops=True records shapes
    and counts FLOPs for the operators the profiler has formulas for; memory=True records
    every allocation and free.
    """
    _check_callable("fn", fn)
    device = parse_device(str(device))
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with without_profiler_chatter():
        with torch_profile(activities=activities, record_shapes=flops, with_flops=flops,
                           profile_memory=memory) as prof:
            fn()
            synchronize(device)  # the kernels fn() queued belong to this profile
    return prof


def profiler_flops(prof: torch_profile) -> dict[str, int]:
    """FLOPs torch.profiler attributed to each operator (needs flops=True): {name: FLOPs}."""
    _check_profile(prof)
    counts = {event.key: int(event.flops) for event in prof.key_averages() if event.flops}
    if not counts and not any(e.input_shapes for e in prof.key_averages()):
        raise ValueError("this profile has no FLOP counts: profile it with flops=True "
                         "(record_shapes and with_flops)")
    return counts


@dataclass(frozen=True)
class OperatorStats:
    """One operator's line in a profile, summed over its calls (microseconds and bytes)."""

    name: str
    calls: int
    self_cpu_us: float  # time in the operator itself, its children excluded
    cpu_us: float  # time from its start to its end, children included
    self_cpu_bytes: int  # bytes it allocated minus bytes it freed, children excluded
    cpu_bytes: int  # the same, children included
    self_device_us: float  # GPU kernel time of the kernels it launched itself (0 on a CPU)


def operator_stats(prof: torch_profile) -> list[OperatorStats]:
    """Every operator of a profile with its totals, the most self CPU time first."""
    _check_profile(prof)
    rows = [
        OperatorStats(
            name=e.key, calls=e.count, self_cpu_us=e.self_cpu_time_total,
            cpu_us=e.cpu_time_total, self_cpu_bytes=e.self_cpu_memory_usage,
            cpu_bytes=e.cpu_memory_usage,
            self_device_us=getattr(e, "self_device_time_total", 0.0),
        )
        for e in prof.key_averages()
    ]
    return sorted(rows, key=lambda r: -r.self_cpu_us)


def find_operator(stats: list[OperatorStats], name: str) -> OperatorStats:
    """The line of operator `name` (such as "aten::mm") in operator_stats' list."""
    _check_stats(stats)
    if not isinstance(name, str):
        raise TypeError(f"name must be an operator's name such as 'aten::mm', got {name!r}")
    for row in stats:
        if row.name == name:
            return row
    raise UnknownOperatorError(f"no operator named {name!r} in this profile; it has "
                   f"{', '.join(sorted(r.name for r in stats)[:12])}, ...")


def format_operator_table(stats: list[OperatorStats], limit: int = 8,
                          by: str = "self_cpu_us", *, times: bool = True) -> str:
    """The `limit` operators with the largest `by`, as a table that fits a projector.

    times=False leaves the time columns out: bytes are the same on every run, times are not.
    """
    _check_stats(stats)
    _check_sizes(limit=limit)
    _check_flags(times=times)
    if by not in ("self_cpu_us", "cpu_us", "self_cpu_bytes", "cpu_bytes", "self_device_us"):
        raise ValueError(f"by must be one of the OperatorStats numbers such as 'self_cpu_us' "
                         f"or 'cpu_bytes', got {by!r}")
    with_memory = any(r.cpu_bytes or r.self_cpu_bytes for r in stats)  # profiled with memory
    if not (times or with_memory):
        raise ValueError("times=False leaves only the memory columns, and this profile has no "
                         "memory: profile it with memory=True")
    top = sorted(stats, key=lambda r: (-getattr(r, by), r.name))[:limit]  # ties: by name
    header = f"{'operator':38s} {'calls':>5s}"
    header += f" {'self µs':>9s} {'total µs':>9s}" if times else ""
    header += f" {'self KB':>9s} {'total KB':>9s}" if with_memory else ""
    lines = [header]
    for r in top:
        line = f"{r.name[:38]:38s} {r.calls:5d}"
        line += f" {r.self_cpu_us:9.0f} {r.cpu_us:9.0f}" if times else ""
        line += f" {r.self_cpu_bytes / 1e3:9.1f} {r.cpu_bytes / 1e3:9.1f}" if with_memory else ""
        lines.append(line)
    return "\n".join(lines)


def _write_atomically(path: Path, write: Callable[[str], None]) -> Path:
    """Call write(temporary path) beside `path`, then rename it into place: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a trace is meant to be shared
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def _check_file_name(name: Any) -> str:
    """A name for a file under build/profiles: no folders, nothing empty."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"name must be a plain file name such as 'cruncher_step', got {name!r}")
    return name


def export_trace(prof: torch_profile, name: str) -> Path:
    """Write the profile's timeline as a Chrome trace, build/profiles/<name>.json; its path."""
    _check_profile(prof)
    path = PROFILE_DIR / f"{_check_file_name(name).removesuffix('.json')}.json"
    with without_profiler_chatter():
        return _write_atomically(path, prof.export_chrome_trace)


def trace_event_names(path: str | Path) -> set[str]:
    """The names of the events in a Chrome trace file (operators, record_function labels)."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a file path such as export_trace returns, got {path!r}")
    with open(path) as f:
        try:
            trace = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"path {str(path)!r} is not a Chrome trace (JSON): {e}") from e
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise ValueError(f"path {str(path)!r} is JSON but not a Chrome trace: it has no "
                         "traceEvents list")
    return {event.get("name", "") for event in trace["traceEvents"]}


# ---------------------------------------------------------------------------------------------
# MemTracker: bytes by category
# ---------------------------------------------------------------------------------------------


def _mem_tracker() -> Any:
    """A new MemTracker (imported on first use: it brings in torch.distributed, about a second)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    return MemTracker()


def by_category(snapshot: dict[Any, dict[Any, int]], device: torch.device | str = "cpu"
                ) -> dict[str, int]:
    """A MemTracker snapshot's bytes on `device`, by category name, plus "Total"."""
    if not isinstance(snapshot, dict):
        raise TypeError(f"snapshot must be a MemTracker snapshot (a dict by device), got "
                        f"{type(snapshot).__name__}")
    device = as_device(device)
    on_device = snapshot.get(device, {})
    named = {getattr(key, "value", key): value for key, value in on_device.items()}
    bytes_by_category = {category: int(named.get(category, 0)) for category in CATEGORIES}
    bytes_by_category["Total"] = sum(bytes_by_category.values())
    return bytes_by_category


def track_memory(fn: Callable[[], Any], *external: Any,
                 device: torch.device | str = "cpu") -> dict[str, int]:
    """Peak bytes by category while fn() runs, from MemTracker.

    `external`: the model, optimizer and input tensors that existed before fn(). MemTracker
    files a model's parameters, buffers and gradients under their names, the optimizer's state
    under Optstate, and other tensors passed here under Other. Tensors made during fn() are
    Activation (forward), Temp (backward) or Optstate (inside optimizer.step()).
    """
    _check_callable("fn", fn)
    tracker = _mem_tracker()
    tracker.track_external(*external)
    with tracker:
        fn()
    return by_category(tracker.get_tracker_snapshot("peak"), device)


STEP_PHASES = ("start", "after forward", "peak", "after backward", "after optimizer step",
               "after zero_grad")


def memory_by_phase(loss_fn: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer,
                    *external: Any) -> dict[str, dict[str, int]]:
    """Bytes by category at each moment of one training step (STEP_PHASES), from MemTracker.

    The step: loss = loss_fn(), loss.backward(), optimizer.step(), optimizer.zero_grad().
    "peak" is the largest moment, wherever it falls.
    """
    _check_callable("loss_fn", loss_fn)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    tracker = _mem_tracker()
    tracker.track_external(optimizer, *external)
    phases = {}
    with tracker:
        phases["start"] = by_category(tracker.get_tracker_snapshot())
        loss = loss_fn()
        phases["after forward"] = by_category(tracker.get_tracker_snapshot())
        loss.backward()
        phases["after backward"] = by_category(tracker.get_tracker_snapshot())
        optimizer.step()
        phases["after optimizer step"] = by_category(tracker.get_tracker_snapshot())
        optimizer.zero_grad(set_to_none=True)
        phases["after zero_grad"] = by_category(tracker.get_tracker_snapshot())
    phases["peak"] = by_category(tracker.get_tracker_snapshot("peak"))
    return {phase: phases[phase] for phase in STEP_PHASES}


def memory_after_each_call(fn: Callable[[], Any], calls: int, *external: Any
                           ) -> list[dict[str, int]]:
    """Bytes by category alive after each of `calls` calls of fn(), from one MemTracker.

    What fn() returns is dropped at once: anything still alive afterwards is held by something
    that outlives the call (a list, a cache, a graph).
    """
    _check_callable("fn", fn)
    _check_sizes(calls=calls)
    tracker = _mem_tracker()
    tracker.track_external(*external)
    after = []
    with tracker:
        for _ in range(calls):
            tracker.reset_mod_stats()  # MemTracker refuses to see a model's forward twice
            fn()
            gc.collect(1)  # a fresh cycle that Python's collector would free is not a leak
            after.append(by_category(tracker.get_tracker_snapshot()))
    return after


def live_bytes_after_each_call(fn: Callable[[], Any], calls: int) -> list[int]:
    """Bytes of the storages fn() made that are still alive after each of `calls` calls.

    A second instrument for leaks, with no module hooks: it only watches the operations (like
    notebook 06's peak_new_memory). MemTracker's module hooks can keep a forward graph alive
    when no backward runs on it; this count cannot.
    """
    _check_callable("fn", fn)
    _check_sizes(calls=calls)
    tracker = _NewStorageTracker()
    after = []
    with tracker:
        for _ in range(calls):
            fn()
            gc.collect(1)  # the young generations only: a full collection takes 0.3 s
            after.append(tracker.live)
    return after


def growth_per_call(after: list[dict[str, int]] | list[int], category: str = "Total"
                    ) -> list[int]:
    """Bytes gained from each call to the next, from memory_after_each_call (of `category`)
    or live_bytes_after_each_call."""
    if category not in (*CATEGORIES, "Total"):
        raise ValueError(f"category must be one of {CATEGORIES} or 'Total', got {category!r}")
    if not isinstance(after, list) or not (all(isinstance(a, int) for a in after) or all(
            isinstance(a, dict) and category in a for a in after)):
        raise TypeError(f"after must be the list that memory_after_each_call (dicts with "
                        f"{category!r}) or live_bytes_after_each_call (ints) returns, got "
                        f"{after!r}")
    if len(after) < 2:
        raise ValueError(f"need the memory after at least 2 calls to see growth, got {len(after)}")
    values = [a if isinstance(a, int) else a[category] for a in after]
    return [b - a for a, b in zip(values, values[1:])]


# ---------------------------------------------------------------------------------------------
# One Cruncher step, counted four ways
# ---------------------------------------------------------------------------------------------

# Notebook 06 names the parts of a step's memory; MemTracker has its own names. Its rule for
# new tensors decides two of them: what backward makes is Temp until a gradient hook claims it,
# and whatever optimizer.step() makes is Optstate, temporaries included.
TIMELINE_TO_CATEGORY = {
    "parameters": "Parameter",
    "optimizer state": "Optstate",
    "batch (x, y)": "Other",
    "saved activations": "Activation",
    "activation gradients": "Temp",
    "weight gradients": "Gradient",
    "update temporary": "Optstate",
}
assert set(TIMELINE_TO_CATEGORY) == set(TIMELINE_PARTS)


def cruncher_step_flops(dim: int, num_layers: int, batch: int) -> int:
    """Matmul FLOPs of a Cruncher training step whose input needs no gradient (FLOPs).

    6 x batch x parameters (notebook 04), minus the first layer's input-gradient matmul,
    2 x batch x dim^2, which autograd never runs because x needs no gradient.
    """
    _check_sizes(dim=dim, num_layers=num_layers, batch=batch)
    return 6 * batch * cruncher_num_parameters(dim, num_layers) - 2 * batch * dim * dim


def predicted_peak_by_category(dim: int, num_layers: int, batch: int,
                               optimizer: str = "adagrad") -> tuple[str, dict[str, int]]:
    """Notebook 06's prediction of a Cruncher step's peak: (its moment, bytes by category)."""
    timeline = training_memory_timeline(dim, num_layers, batch, optimizer)
    moment = max(timeline, key=lambda m: sum(timeline[m].values()))
    predicted = dict.fromkeys(CATEGORIES, 0)
    for part, value in timeline[moment].items():
        predicted[TIMELINE_TO_CATEGORY[part]] += value
    predicted["Total"] = sum(predicted[c] for c in CATEGORIES)
    return moment, predicted


@dataclass(frozen=True)
class Reconciliation:
    """One training step counted several ways: FLOPs by source; peak bytes by source and category."""

    flops: dict[str, int]
    memory: dict[str, dict[str, int]]
    profiler_flops: dict[str, int]  # torch.profiler's FLOPs by operator ("aten::mm": ...)


def reconcile_cruncher_step(dim: int, num_layers: int, batch: int,
                            optimizer: str = "adagrad") -> Reconciliation:
    """A Cruncher training step (fp32, on the CPU) by formula, FlopCounterMode, profiler, MemTracker.

    Like notebook 06, the step measured is the second: the first one makes the optimizer state.
    """
    _check_sizes(dim=dim, num_layers=num_layers, batch=batch)
    torch.manual_seed(0)
    model = Cruncher(dim, num_layers)
    x, y = torch.randn(batch, dim), torch.randn(batch)
    step_optimizer = make_optimizer(optimizer, model.parameters(), lr=0.01)

    def step() -> None:
        train_step(model, step_optimizer, x, y)

    step()  # the first step creates the optimizer state
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    by_operator = profiler_flops(profile_once(step, flops=True))
    flops = {
        "napkin: 6 x parameters x batch": 6 * batch * cruncher_num_parameters(dim, num_layers),
        "formula (x needs no gradient)": cruncher_step_flops(dim, num_layers, batch),
        "FlopCounterMode": counter.get_total_flops(),
        "torch.profiler": sum(by_operator.values()),
    }
    moment, predicted = predicted_peak_by_category(dim, num_layers, batch, optimizer)
    measured = track_memory(step, model, step_optimizer, x, y)
    memory = {f"notebook 06 ({moment})": predicted, "MemTracker": measured}
    return Reconciliation(flops, memory, by_operator)


def format_reconciliation(rec: Reconciliation) -> str:
    """The FLOPs and the peak memory of a Reconciliation as two aligned tables."""
    if not isinstance(rec, Reconciliation):
        raise TypeError(f"rec must be a Reconciliation, as reconcile_cruncher_step returns, got "
                        f"{type(rec).__name__}")
    width = max(len(s) for s in rec.flops)
    lines = ["FLOPs of one step"]
    lines += [f"  {source:{width}s} {value:15,d}" for source, value in rec.flops.items()]
    sources = list(rec.memory)
    widths = [max(len(s), 12) for s in sources]
    lines.append("Peak bytes by category")
    lines.append(f"  {'':10s}" + "".join(f"  {s:>{w}s}" for s, w in zip(sources, widths)))
    for category in (*CATEGORIES, "Total"):
        values = [rec.memory[s].get(category, 0) for s in sources]
        if any(values):
            lines.append(f"  {category:10s}" + "".join(f"  {v:{w},d}"
                                                       for v, w in zip(values, widths)))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# One Transformer step, counted the same ways
# ---------------------------------------------------------------------------------------------


def cpu_sized(name: str) -> TransformerConfig:
    """A preset of notebook 09 shrunk for a CPU: the same family and ratios, tiny sizes."""
    cfg = preset(name)  # names the presets when `name` is not one
    group = cfg.num_heads // cfg.num_kv_heads  # query heads per key/value head: kept
    d_model, heads = 128, max(4, group)
    kv_heads = heads // group
    d_ff = 32 * round(cfg.d_ff / cfg.d_model * d_model / 32)  # keeps d_ff / d (to 1/4)
    return cfg.replace(vocab_size=512, context_length=64, d_model=d_model, num_layers=2,
                       num_heads=heads, num_kv_heads=kv_heads, d_ff=d_ff,
                       name=f"{name} (CPU-sized)")


def parameter_tensors(cfg: TransformerConfig) -> int:
    """Number of parameter tensors (not numbers) of Transformer(cfg): weights, biases, norms."""
    cfg = _check_config(cfg)
    linear = 1 + cfg.bias  # a weight, and a bias if the config has them
    norm = 1 + (cfg.norm == "layernorm" and cfg.bias)  # RMSNorm has no bias
    per_layer = (4 + cfg.mlp_matrices) * linear + 2 * norm
    outside = 1 + (cfg.positions == "learned") + norm + (not cfg.tied_embeddings)
    return cfg.num_layers * per_layer + outside


def memory_at_backward_start(cfg: TransformerConfig, batch: int, seq_len: int
                             ) -> dict[str, int]:
    """Bytes by category early in backward of an fp32 torch.optim.AdamW step, after a first step.

    The moment cross-entropy's backward has made the gradient of the logits while the gradient
    of the log-probabilities is still alive: the activations are held, no weight gradient exists
    yet (zero_grad(set_to_none=True) freed the last ones), and two batch x seq_len x vocab
    tensors sit on top. Parameters, AdamW's two moments and its step counters (one 4-byte tensor
    per parameter tensor) are there throughout; ids and targets are the batch (Other).

    It is the step's peak when the activations and those two tensors outweigh what comes later:
    all the gradients plus the update's temporaries at the optimizer step, or a layer's backward
    temporaries. That holds for enough tokens and a vocabulary much larger than d_ff (the
    tests check it for every kind of block at 48 tokens and a vocabulary of 512); with one short
    sequence the peak moves to the optimizer step.
    """
    tokens = batch * seq_len
    params = num_parameters(cfg)["total"]
    batch_bytes = 2 * tokens * INDEX_BYTES  # ids and targets, made before the step
    memory = dict.fromkeys(CATEGORIES, 0)
    memory["Parameter"] = FP32_BYTES * params
    if cfg.positions == "rope":
        memory["Buffer"] = 2 * cfg.context_length * cfg.head_dim * FP32_BYTES  # cos and sin
    memory["Optstate"] = 2 * FP32_BYTES * params + FP32_BYTES * parameter_tensors(cfg)
    # Everything autograd saved, less the batch (already counted as Other). Of the 4-byte
    # tensors, nll_loss's saved total_weight is freed by now; the loss and the seed gradient
    # of loss.backward() are alive: 4 bytes more than saved.
    memory["Activation"] = (activation_bytes(cfg, batch, seq_len, torch.float32)["total"]
                            - batch_bytes + FP32_BYTES)
    memory["Temp"] = 2 * tokens * cfg.vocab_size * FP32_BYTES
    memory["Other"] = batch_bytes
    memory["Total"] = sum(memory[c] for c in CATEGORIES)
    return memory


def sum_of_parts_by_category(cfg: TransformerConfig, batch: int, seq_len: int
                             ) -> dict[str, int]:
    """Notebook 09's training_memory (fp32, AdamW) in MemTracker's categories."""
    parts = training_memory(cfg, batch, seq_len, optimizer="adamw", precision="fp32",
                            activation_dtype=torch.float32)
    memory = dict.fromkeys(CATEGORIES, 0)
    memory.update({"Parameter": parts["weights"], "Gradient": parts["gradients"],
                   "Optstate": parts["optimizer state"], "Activation": parts["activations"]})
    memory["Total"] = parts["total"]
    return memory


def transformer_train_step(model: Transformer, optimizer: torch.optim.Optimizer,
                           ids: torch.Tensor, targets: torch.Tensor) -> None:
    """One training step: the loss, backward, the update, and the gradients freed."""
    language_model_loss(model, ids, targets).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def transformer_training_state(cfg: TransformerConfig, batch: int, seq_len: int, *,
                               device: torch.device | str = "cpu") -> tuple[Any, ...]:
    """(model, AdamW optimizer, ids, targets), seeded; one step taken, so the state exists."""
    _check_sizes(batch=batch, seq_len=seq_len)
    device = parse_device(str(device))
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len)).to(device)
    targets = torch.roll(ids, -1, dims=1)  # a separate tensor, as a data loader returns it
    transformer_train_step(model, optimizer, ids, targets)  # makes AdamW's state
    return model, optimizer, ids, targets


def step_peak_by_category(cfg: TransformerConfig, batch: int, seq_len: int) -> dict[str, int]:
    """MemTracker's peak bytes by category in an fp32 AdamW step of Transformer(cfg) (a second step)."""
    state = transformer_training_state(cfg, batch, seq_len)
    return track_memory(lambda: transformer_train_step(*state), *state)


def reconcile_transformer_step(cfg: TransformerConfig, batch: int, seq_len: int
                               ) -> Reconciliation:
    """A Transformer training step (fp32, AdamW, on the CPU) by formula and by measurement."""
    state = transformer_training_state(cfg, batch, seq_len)
    _, _, ids, targets = state

    def step() -> None:
        transformer_train_step(*state)

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    by_operator = profiler_flops(profile_once(step, flops=True))
    fused = Transformer(cfg, fused_attention=True)  # its weights do not change its FLOPs
    fused_counter = FlopCounterMode(display=False)
    with fused_counter:
        language_model_loss(fused, ids, targets).backward()
    flops = {
        "napkin: 6 N T": six_n_t(cfg, batch, seq_len),
        "formula (notebook 09)": training_flops(cfg, batch, seq_len)["total"],
        "FlopCounterMode": counter.get_total_flops(),
        "torch.profiler": sum(by_operator.values()),
        "FlopCounterMode, fused attention": fused_counter.get_total_flops(),
    }
    memory = {
        "sum of the parts (09)": sum_of_parts_by_category(cfg, batch, seq_len),
        "at backward start": memory_at_backward_start(cfg, batch, seq_len),
        "MemTracker": track_memory(step, *state),
    }
    return Reconciliation(flops, memory, by_operator)


# ---------------------------------------------------------------------------------------------
# Python overhead, and the GPU's view
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatmulTiming:
    """Seconds per n x n @ n x n matmul, one value per timed block (from time_it)."""

    n: int
    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError("times must hold at least one timed block's seconds per matmul")

    @property
    def timing(self) -> Timing:
        """The blocks as a Timing: median and quartiles, printed as "1.77 us (1.72-2.00)"."""
        return Timing(tuple(self.times))

    @property
    def median(self) -> float:
        return self.timing.median

    @property
    def flops_per_second(self) -> float:
        return 2 * self.n**3 / self.median


def time_matmuls(sizes: tuple[int, ...], device: torch.device | str = "cpu", *,
                 repeats: int = 15) -> list[MatmulTiming]:
    """Time an n x n matmul for each n: `repeats` blocks of calls (each at least 1 ms).

    notebook 03's time_it: a warm-up first, then the blocks, each synchronized on a GPU; on a
    CPU, on one thread (time_it's default), so that a busy machine slows it the least.
    """
    if not isinstance(sizes, (tuple, list)) or not sizes:
        raise ValueError(f"sizes must name at least one matrix size n, as a tuple such as "
                         f"(64, 256); got {sizes!r}")
    for n in sizes:
        _check_sizes(**{"each size": n})
    _check_sizes(repeats=repeats)
    device = parse_device(str(device))
    timings = []
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        timing = time_it(lambda a=a, b=b: a @ b, device=device, repeats=repeats)
        timings.append(MatmulTiming(n, timing.times))
    return timings


def format_matmul_timing(timing: MatmulTiming, overhead: float) -> str:
    """One size's line: "n=   32: 3.14 us (3.08-3.39), 20.8 GFLOP/s; the fixed cost 57% of it".

    The fixed cost is `overhead`, the smallest size's time: what a matmul costs with no work.
    """
    if not isinstance(timing, MatmulTiming):
        raise TypeError(f"timing must be one MatmulTiming of the list time_matmuls returns, got "
                        f"{type(timing).__name__}")
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not (
            math.isfinite(overhead) and overhead > 0):
        raise ValueError(f"overhead must be a finite number of seconds > 0 (the smallest size's "
                         f"median), got {overhead!r}")
    unit = "us" if timing.median < 1e-3 else "ms"
    return (f"n={timing.n:5d}: {timing.timing.format(unit)}, "
            f"{timing.flops_per_second / 1e9:7.3g} GFLOP/s; the fixed cost "
            f"{min(1.0, overhead / timing.median):4.0%} of it")


def overhead_summary(timings: list[MatmulTiming], width: int = 100) -> str:
    """What the measured times say about overhead, chosen from them and wrapped at `width`.

    The fixed cost is the smallest size's median time; a size is "mostly overhead" where that
    is at least half of its own median time (format_matmul_timing prints the share). The
    model's crossover, where 2 n^3 / (the best rate) equals the fixed cost, is quoted with what
    the measurements themselves say, and whether the two agree.
    """
    if not isinstance(timings, list) or not timings or not all(
            isinstance(t, MatmulTiming) for t in timings):
        raise ValueError("timings must be the non-empty list time_matmuls returns")
    timings = sorted(timings, key=lambda t: t.n)
    overhead = timings[0].median
    mostly_overhead = [overhead >= t.median / 2 for t in timings]
    overhead_ns = [t.n for t, o in zip(timings, mostly_overhead) if o]
    work_ns = [t.n for t, o in zip(timings, mostly_overhead) if not o]
    crossover = overhead_crossover(overhead, max(t.flops_per_second for t in timings))
    model = (f"the model's crossover, where 2 n³ / the best rate equals the fixed cost (the "
             f"n={timings[0].n} time, {overhead * 1e6:.3g} µs), is n ≈ {crossover:.0f}")
    if not work_ns:
        text = (f"every size measured is mostly overhead, up to n={timings[-1].n}: time larger "
                f"matmuls to see the work take over; {model}.")
    elif max(overhead_ns) < min(work_ns):
        below, above = max(overhead_ns), min(work_ns)
        agrees = below < crossover <= above
        text = (f"matmuls up to n={below} are mostly overhead (the fixed cost is at least half "
                f"of their time), from n={above} mostly work; {model}"
                + (", between the two." if agrees else
                   ", outside that range: the rate or the fixed cost measured here is off (a "
                   "busy machine?); rerun the cell."))
    else:
        text = (f"no clean split: mostly overhead at n={_listed(overhead_ns)}, mostly work at "
                f"n={_listed(work_ns)}. Timings this uneven come from a busy machine: rerun "
                f"the cell ({model}).")
    return textwrap.fill(text[0].upper() + text[1:], width=width, subsequent_indent="    ")


def _listed(values: list[int]) -> str:
    """1, 8 and 32."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def overhead_crossover(overhead_seconds: float, flops_per_second: float) -> float:
    """The n at which an n x n matmul's work, 2 n^3 / rate, takes as long as the fixed overhead."""
    for name, value in (("overhead_seconds", overhead_seconds),
                        ("flops_per_second", flops_per_second)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return (overhead_seconds * flops_per_second / 2) ** (1 / 3)


def launch_vs_kernel(n: int, device: torch.device | str, calls: int = 50) -> tuple[float, float]:
    """For an n x n matmul on a CUDA GPU: (CPU µs per call, GPU kernel µs per call).

    The CPU time is the wall-clock time of the launching loop; the kernel time, the profiler's.
    """
    _check_sizes(n=n, calls=calls)
    device = parse_device(str(device))
    if device.type != "cuda":
        raise ValueError(f"launch_vs_kernel needs a CUDA device (kernels run apart from the "
                         f"CPU only there), got {device}")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):  # warm-up: cuBLAS picks its kernel on the first calls
        a @ b
    synchronize(device)

    def calls_of_mm() -> None:
        for _ in range(calls):
            a @ b

    # The CPU's cost of a call, Python and launch included: the loop's time before the GPU is
    # waited for (50 launches do not fill CUDA's queue, so the loop never blocks on it).
    synchronize(device)
    start = time.perf_counter()
    calls_of_mm()
    launch_us = (time.perf_counter() - start) / calls * 1e6
    synchronize(device)
    prof = profile_once(calls_of_mm, device=device)
    # The kernels are events of their own, on the GPU's timeline (recorded through CUPTI).
    kernel_us = sum(e.self_device_time_total for e in prof.key_averages()
                    if e.device_type == torch.autograd.DeviceType.CUDA)
    if kernel_us == 0:
        raise RuntimeError("the profile recorded no CUDA kernels: torch.profiler needs CUPTI "
                           "(part of the CUDA toolkit) to see them")
    return launch_us, kernel_us / calls


def cuda_memory_snapshot(fn: Callable[[], Any], name: str, device: torch.device | str
                         ) -> dict[str, Any]:
    """Record the CUDA caching allocator's history while fn() runs; save it under build/profiles.

    Writes <name>.pickle (drag it onto pytorch.org/memory_viz) and <name>.html
    (torch.cuda._memory_viz.trace_plot, which loads its viewer script from the web when
    opened). Returns the snapshot.
    """
    _check_callable("fn", fn)
    _check_file_name(name)  # before the run, not after it
    device = parse_device(str(device))
    if device.type != "cuda":
        raise ValueError(f"memory snapshots come from the CUDA caching allocator: need a CUDA "
                         f"device, got {device}")
    # Python stacks only: symbolizing C++ frames for every allocation can take minutes.
    torch.cuda.memory._record_memory_history(stacks="python", max_entries=100_000)
    try:
        fn()
        synchronize(device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    from torch.cuda import _memory_viz

    pickled = pickle.dumps(snapshot)
    _write_atomically(PROFILE_DIR / f"{name}.pickle", lambda p: Path(p).write_bytes(pickled))
    html = _memory_viz.trace_plot(snapshot)
    _write_atomically(PROFILE_DIR / f"{name}.html", lambda p: Path(p).write_text(html))
    return snapshot


def allocated_over_time(snapshot: dict[str, Any], device_index: int = 0) -> list[int]:
    """Bytes allocated (net, since recording began) after each alloc or free in a snapshot's trace.

    The trace keeps the last max_entries events (a ring buffer): if a run made more, the oldest
    are gone and the curve starts mid-run.
    """
    traces = snapshot.get("device_traces") if isinstance(snapshot, dict) else None
    if not isinstance(traces, list) or not isinstance(device_index, int) \
            or not 0 <= device_index < len(traces):
        raise ValueError("expected a CUDA memory snapshot (torch.cuda.memory._snapshot()) with "
                         f"a trace for device {device_index}; was history being recorded?")
    allocated, timeline = 0, []
    for event in traces[device_index]:
        if not isinstance(event, dict) or not {"action", "size"} <= event.keys():
            raise ValueError(f"snapshot's trace events must have an action and a size, got "
                             f"{event!r}: pass torch.cuda.memory._snapshot() itself")
        if event["action"] == "alloc":
            allocated += event["size"]
        elif event["action"] == "free_completed":
            allocated -= event["size"]
        else:
            continue
        timeline.append(allocated)
    return timeline


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

_CATEGORY_COLORS = {"Parameter": "#0072B2", "Buffer": "#56B4E9", "Gradient": "#009E73",
                    "Optstate": "#E69F00", "Activation": "#D55E00", "Temp": "#CC79A7",
                    "Other": "#999999"}


def plot_memory_by_phase(phases: dict[str, dict[str, int]], title: str,
                         reference: tuple[str, int] | None = None) -> Any:
    """Stacked bars: MemTracker's bytes by category at each phase of a step (MB)."""
    if not isinstance(phases, dict) or not phases or not all(
            isinstance(p, dict) and set(CATEGORIES) <= p.keys() for p in phases.values()):
        raise ValueError("phases must be what memory_by_phase returns: {phase: {category: "
                         "bytes}} with every MemTracker category")
    fig, ax = plt.subplots(figsize=(10, 4.8))
    names = list(phases)
    bottom = [0.0] * len(names)
    for category in CATEGORIES:
        heights = [phases[p][category] / 1e6 for p in names]
        if any(heights):
            ax.bar(names, heights, bottom=bottom, label=category,
                   color=_CATEGORY_COLORS[category])
            bottom = [b + h for b, h in zip(bottom, heights)]
    if reference is not None:
        label, value = reference
        ax.axhline(value / 1e6, color="black", linestyle="--", label=label)
    ax.set_xticks(range(len(names)), [p.replace("after ", "after\n") for p in names])
    ax.set_ylabel("bytes alive (MB)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def plot_top_operators(stats: list[OperatorStats], limit: int = 8) -> Any:
    """Horizontal bars: the operators with the most self CPU time, and their total time."""
    _check_stats(stats)
    _check_sizes(limit=limit)
    top = sorted(stats, key=lambda r: -r.self_cpu_us)[:limit][::-1]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [r.name[:32] for r in top]
    ax.barh(names, [r.cpu_us / 1e3 for r in top], color="#56B4E9", label="total (children in)")
    ax.barh(names, [r.self_cpu_us / 1e3 for r in top], color="#0072B2", label="self")
    ax.set_xlabel("CPU time in the profiled step (ms)")
    ax.set_title("Top operators by self CPU time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_matmul_overhead(timings: list[MatmulTiming]) -> Any:
    """Log-log: seconds per matmul against n, with the fixed overhead and the pure-work line."""
    if not isinstance(timings, list) or not timings or not all(
            isinstance(t, MatmulTiming) for t in timings):
        raise ValueError("timings must be the non-empty list time_matmuls returns")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ns = [t.n for t in timings]
    medians = [t.median * 1e6 for t in timings]
    ax.errorbar(ns, medians, yerr=[[m - t.timing.low * 1e6 for m, t in zip(medians, timings)],
                                   [t.timing.high * 1e6 - m for m, t in zip(medians, timings)]],
                marker="o", label="measured (median and quartiles)")
    overhead = timings[0].median
    rate = max(t.flops_per_second for t in timings)
    ax.plot(ns, [overhead * 1e6] * len(ns), linestyle="--", color="grey",
            label=f"overhead: the n={ns[0]} time")
    ax.plot(ns, [2 * n**3 / rate * 1e6 for n in ns], linestyle=":", color="black",
            label="work alone: 2n³ / best rate")
    crossover = overhead_crossover(overhead, rate)
    ax.axvline(crossover, color="#D55E00", linewidth=1.2,
               label=f"work = overhead at n ≈ {crossover:.0f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis, ax.yaxis)
    ax.set_ylim(bottom=overhead * 1e6 / 20)  # the work line far below says nothing more
    ax.set_xlabel("n (an n × n @ n × n matmul)")
    ax.set_ylabel("µs per matmul")
    ax.set_title("Small matmuls cost their overhead, large ones their FLOPs")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_allocated_over_time(timeline: list[int], title: str) -> Any:
    """Bytes allocated against allocator event number, from allocated_over_time (MB)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(range(len(timeline)), [b / 1e6 for b in timeline], drawstyle="steps-post")
    ax.set_xlabel("allocator event (alloc or free)")
    ax.set_ylabel("allocated since recording began (MB)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------

EXERCISES = Exercises("10")

LINEAR_PROFILE = {"total": 120, "aten::t": 6, "aten::addmm": 101}  # exercise 1, µs


@EXERCISES.checker(1, "self CPU time of aten::linear", wants="a number of µs, exactly")
def _check_self_time(answer: object) -> Feedback:
    total, t, addmm = (LINEAR_PROFILE[k] for k in ("total", "aten::t", "aten::addmm"))
    return check_count(answer, total - t - addmm, unit="µs", hints={
        total: "that is its total time; self time leaves out what its children took.",
        t + addmm: "that is the children's time; self time is what is left.",
        total - addmm: "subtract both children, aten::t as well.",
        total - t: "subtract both children, aten::addmm as well.",
    })


ADAMW_SHAPES = ((1000, 512), (512,), (512, 10))


@EXERCISES.checker(2, "MemTracker's Optstate after one torch.optim.AdamW step",
                   wants="an int (bytes), exactly")
def _check_adamw_state(answer: object) -> Feedback:
    params, tensors = sum(math.prod(shape) for shape in ADAMW_SHAPES), len(ADAMW_SHAPES)
    moments, counters = 2 * FP32_BYTES * params, FP32_BYTES * tensors
    return check_count(answer, moments + counters, unit="bytes", hints={
        moments: "add AdamW's step counters: one float32 tensor per parameter tensor.",
        moments // 2 + counters: "AdamW keeps two moments per parameter, not one.",
        moments + FP32_BYTES: "one step counter per parameter tensor (three here), not one per "
                              "optimizer.",
        moments + 8 * tensors: "each counter is a float32: 4 bytes, not 8.",
    })


ADAGRAD_CRUNCHER = {"dim": 64, "num_layers": 2, "batch": 8}  # exercise 3


@EXERCISES.checker(3, "MemTracker's Optstate at the peak of a small-batch AdaGrad step",
                   wants="an int (bytes), exactly")
def _check_optstate_at_update(answer: object) -> Feedback:
    dim, num_layers = ADAGRAD_CRUNCHER["dim"], ADAGRAD_CRUNCHER["num_layers"]
    params = cruncher_num_parameters(dim, num_layers)
    state, temporary = FP32_BYTES * params, FP32_BYTES * dim * dim  # the largest parameter's
    return check_count(answer, state + temporary, unit="bytes", hints={
        state: "that is AdaGrad's sum of squares alone; at the peak the update's temporary "
               "denominator is alive too, and MemTracker files what optimizer.step() makes "
               "as Optstate.",
        state + FP32_BYTES * params: "the update makes one temporary at a time, the size of the "
                                     "parameter it updates: the largest is D x D.",
        state + FP32_BYTES * dim: "the temporary is as large as the largest parameter, D x D, "
                                  "not the head's D.",
        2 * state + temporary: "AdaGrad keeps one state tensor per parameter (the sum of "
                               "squares), not two.",
    })


GPU_OVERHEAD = {"overhead_seconds": 10e-6, "flops_per_second": 989e12}  # exercise 4


@EXERCISES.checker(4, "matmul size at which overhead and work take equally long",
                   wants=f"a matrix size n (a number, whole or not), "
                         f"{tolerance_text(DEFAULT_REL_TOL)}")
def _check_crossover(answer: object) -> Feedback:
    overhead, rate = GPU_OVERHEAD["overhead_seconds"], GPU_OVERHEAD["flops_per_second"]
    return check_number(answer, overhead_crossover(overhead, rate), unit="n", hints={
        (overhead * rate) ** (1 / 3): "an n x n @ n x n matmul does 2 n^3 FLOPs, not n^3.",
        (2 * overhead * rate) ** (1 / 3): "2 n^3 / rate = overhead gives n^3 = overhead x rate "
                                          "/ 2: divide by 2, do not multiply.",
        (overhead * rate / 2) ** (1 / 2): "the work grows as n^3: take a cube root.",
        # A unit off by 1000 moves n by 10: seconds read as ms, or FLOP/s as PFLOP/s...
        overhead_crossover(overhead * 1e3, rate): "10 times too large: 10 µs is 1e-5 s (not "
                                                  "1e-2, 10 ms), and 989 TFLOP/s is 9.89e14 "
                                                  "FLOP/s.",
        # ... or ns, or GFLOP/s.
        overhead_crossover(overhead / 1e3, rate): "10 times too small: 10 µs is 1e-5 s (not "
                                                  "1e-8, 10 ns), and 989 TFLOP/s is 9.89e14 "
                                                  "FLOP/s (not 9.89e11, GFLOP/s).",
    })


LEAK_CONFIG = "gpt2-small"
LEAK_BATCH, LEAK_SEQ_LEN = 2, 16
ACCURACY_CALLS = 3


def _accuracy_reference(model: Transformer, ids: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(ids).argmax(dim=-1) == targets).float().mean().item()


@EXERCISES.checker(5, "an accuracy to keep for every batch, holding no memory",
                   wants="a function (model, ids, targets) -> the accuracy, a Python float")
def _check_batch_accuracy(batch_accuracy: object) -> Feedback:
    if not callable(batch_accuracy):
        got = (f"the text {batch_accuracy!r}" if isinstance(batch_accuracy, str)
               else f"a {type(batch_accuracy).__name__}")
        return wrong(f"define a function batch_accuracy(model, ids, targets) that returns the "
                     f"accuracy; got {got}.")
    torch.manual_seed(0)
    cfg = cpu_sized(LEAK_CONFIG)
    model = Transformer(cfg)
    ids = torch.randint(0, cfg.vocab_size, (LEAK_BATCH, LEAK_SEQ_LEN))
    targets = torch.roll(ids, -1, dims=1)
    kept: list[Any] = []  # what a training loop keeps, batch after batch, for a plot

    def one_batch() -> None:
        kept.append(batch_accuracy(model, ids, targets))

    # Without module hooks: MemTracker's would keep a graph that no backward consumes alive.
    after = live_bytes_after_each_call(one_batch, ACCURACY_CALLS)
    if kept[0] is None:  # the stub, or a function that returns nothing yet
        return UNANSWERED
    growth = [after[0], *growth_per_call(after)]
    logits_bytes = LEAK_BATCH * LEAK_SEQ_LEN * cfg.vocab_size * FP32_BYTES
    if any(g > 0 for g in growth):
        held = max(growth)
        if held > logits_bytes:
            return wrong(f"each call keeps {held:,} bytes: the forward's whole graph is alive. "
                         "Run the forward under torch.no_grad(), and return a Python number.")
        if held == logits_bytes:
            return wrong(f"each call keeps {held:,} bytes: the logits. .detach() does not free "
                         "a tensor's storage; return the accuracy as a number (.item()).")
        return wrong(f"each call keeps {held:,} bytes: return a Python float (.item()), not a "
                     "tensor.")
    expected = _accuracy_reference(model, ids, targets)
    if not all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in kept):
        return wrong(f"return a Python number (.item()), not a {type(kept[0]).__name__}.")
    if not all(math.isclose(k, expected, rel_tol=1e-6, abs_tol=1e-9) for k in kept):
        return wrong(f"the accuracy is the fraction of positions whose largest logit is the "
                     f"target ({expected:.4f} here); got {kept[0]!r}.")
    return CORRECT
