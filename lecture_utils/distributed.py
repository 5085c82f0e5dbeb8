"""Notebook 11: data parallelism and sharded training state (DDP, ZeRO 1-3, FSDP2), in bytes.

Two halves. The napkin: bytes per GPU at each ZeRO stage, the largest model that fits, the bytes
each collective moves per step, and how long that takes on a link. The measurement: real
torch.distributed process groups (gloo, on the CPU) train the Cruncher with DDP,
ZeroRedundancyOptimizer and FSDP2; each rank reports the bytes of its own tensors and every
collective it called, so both halves can be compared number for number.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from jaxtyping import Float
from torch.utils._python_dispatch import TorchDispatchMode

from lecture_utils.exercises import Exercises, Feedback, check_number
from lecture_utils.hardware import GB, GPUSpec, LinkSpec, lookup_gpu, lookup_link, peak_flops
from lecture_utils.models import Cruncher, _check_size, cruncher_num_parameters
from lecture_utils.napkin import (  # sharded_parts: the command line needs it without torch
    BACKWARD_FLOPS_PER_PARAM_TOKEN,
    FORWARD_FLOPS_PER_PARAM_TOKEN,
    ZERO_STAGES,
    _check_stage,
    _positive,
    bytes_per_parameter,
    sharded_parts,
)

# ---------------------------------------------------------------------------------------------
# The napkin: what each GPU holds
# ---------------------------------------------------------------------------------------------

STAGE_NAMES = {0: "DDP", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3 (FSDP)"}
PARTS = ("weights", "weights_copy", "gradients", "optimizer_state")


@dataclass(frozen=True)
class GPUBytes:
    """Bytes of training state on one GPU, by part (activations excluded)."""

    weights: float  # fp32 weights: the master copy under mixed precision
    weights_copy: float  # the bf16 copy the matmuls read (mixed precision only)
    gradients: float
    optimizer_state: float

    @property
    def total(self) -> float:
        """Bytes on one GPU, all parts together."""
        return self.weights + self.weights_copy + self.gradients + self.optimizer_state


def bytes_per_gpu(
    num_parameters: float,
    num_gpus: int,
    zero_stage: int,
    optimizer: str = "adamw",
    precision: str = "fp32",
) -> GPUBytes:
    """Bytes of training state each of `num_gpus` GPUs holds at `zero_stage` (0 = plain DDP)."""
    _positive("num_parameters", num_parameters)
    _check_size("num_gpus", num_gpus)
    per_param = bytes_per_parameter(optimizer, precision)
    split = sharded_parts(zero_stage, precision)
    return GPUBytes(**{
        part: num_parameters * getattr(per_param, part) / (num_gpus if part in split else 1)
        for part in PARTS
    })


def max_parameters_sharded(
    num_gpus: int,
    memory_per_gpu: float,
    zero_stage: int,
    optimizer: str = "adamw",
    precision: str = "fp32",
) -> float:
    """Largest parameter count whose training state fits on each GPU (bytes), activations ignored."""
    _positive("memory_per_gpu", memory_per_gpu)
    # bytes_per_gpu is linear in the parameter count: solve bytes_per_gpu(P) = memory for P.
    return memory_per_gpu / bytes_per_gpu(1, num_gpus, zero_stage, optimizer, precision).total


# ---------------------------------------------------------------------------------------------
# The napkin: what each GPU sends
# ---------------------------------------------------------------------------------------------

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "broadcast")
PHASES = ("forward", "backward", "step")


def ring_bytes_per_gpu(collective: str, payload_bytes: float, num_gpus: int) -> float:
    """Bytes each GPU sends (and receives) in a bandwidth-optimal ring over `num_gpus` GPUs.

    `payload_bytes` is the whole tensor: an all-reduce's buffer, an all-gather's output, a
    reduce-scatter's input, a broadcast's buffer.
    """
    if collective not in COLLECTIVES:
        raise ValueError(f"unknown collective {collective!r}; use one of {COLLECTIVES}")
    _positive("payload_bytes", payload_bytes, allow_zero=True)
    _check_size("num_gpus", num_gpus)
    n = num_gpus
    if collective == "all_reduce":  # a reduce-scatter, then an all-gather
        return 2 * (n - 1) / n * payload_bytes
    # All-gather and reduce-scatter: each GPU sends every chunk but its own once. A broadcast,
    # pipelined along a chain: every GPU but the last forwards all of it, (N-1)/N on average.
    return (n - 1) / n * payload_bytes


@dataclass(frozen=True)
class Collective:
    """One collective of a training step: its kind, when it runs, and its payload in bytes."""

    kind: str
    phase: str
    payload_bytes: float

    def bytes_per_gpu(self, num_gpus: int) -> float:
        """Bytes each GPU sends for this collective (ring algorithms)."""
        return ring_bytes_per_gpu(self.kind, self.payload_bytes, num_gpus)


def step_collectives(
    num_parameters: float, zero_stage: int, precision: str = "fp32"
) -> list[Collective]:
    """The collectives of one training step at `zero_stage`, as the ZeRO paper schedules them."""
    _positive("num_parameters", num_parameters)
    sizes = bytes_per_parameter("sgd", precision)
    grads = num_parameters * sizes.gradients
    # The weights travel in the dtype the model computes with: bf16 under mixed precision.
    weights = num_parameters * (sizes.weights_copy or sizes.weights)
    _check_stage(zero_stage)
    if zero_stage == 0:
        return [Collective("all_reduce", "backward", grads)]
    if zero_stage in (1, 2):
        # Each GPU needs only its shard of the summed gradients, updates only its shard of the
        # weights, then gathers everyone's: the same bytes as one all-reduce, split in two. The
        # gather can overlap the next forward (layer by layer), so it is counted there.
        return [Collective("reduce_scatter", "backward", grads),
                Collective("all_gather", "forward", weights)]
    # Stage 3 keeps no full weights: gather them for the forward, again for the backward.
    return [Collective("all_gather", "forward", weights),
            Collective("all_gather", "backward", weights),
            Collective("reduce_scatter", "backward", grads)]


def communication_bytes_per_gpu(
    num_parameters: float, num_gpus: int, zero_stage: int, precision: str = "fp32"
) -> float:
    """Bytes each GPU sends in one training step at `zero_stage` (ring collectives)."""
    return sum(c.bytes_per_gpu(num_gpus)
               for c in step_collectives(num_parameters, zero_stage, precision))


def communication_seconds(num_bytes: float, link: str | LinkSpec) -> float:
    """Seconds to send `num_bytes` from each GPU over `link` at its datasheet bandwidth."""
    _positive("num_bytes", num_bytes, allow_zero=True)
    spec = link if isinstance(link, LinkSpec) else lookup_link(link)
    return num_bytes / spec.bandwidth


@dataclass(frozen=True)
class StepTime:
    """A data-parallel step's time on one GPU, in seconds, split by phase."""

    compute: dict[str, float]  # forward, backward, step (the optimizer: ~0 FLOPs here)
    communication: dict[str, float]

    def __post_init__(self) -> None:
        for name in ("compute", "communication"):
            if not isinstance(getattr(self, name), dict) or set(getattr(self, name)) != set(PHASES):
                raise ValueError(f"{name} must give seconds for each phase {PHASES}, got "
                                 f"{getattr(self, name)!r}")

    @property
    def exposed(self) -> float:
        """Communication seconds that no compute of the same phase can hide (a lower bound)."""
        return sum(max(0.0, self.communication[p] - self.compute[p]) for p in PHASES)

    @property
    def total(self) -> float:
        """Compute plus the exposed communication: the step's time if overlap is perfect."""
        return sum(self.compute.values()) + self.exposed


def step_time(
    num_parameters: float,
    tokens_per_gpu: float,
    num_gpus: int,
    zero_stage: int,
    link: str | LinkSpec,
    gpu: str | GPUSpec = "H100 SXM",
    mfu: float = 0.5,
    precision: str = "mixed_bf16_grads",
) -> StepTime:
    """Compute and communication seconds of one step, by phase (6 N T FLOPs, ring collectives).

    Optimistic on purpose: datasheet bandwidth, and perfect overlap within each phase.
    """
    _positive("num_parameters", num_parameters)
    _check_size("num_gpus", num_gpus)
    _positive("tokens_per_gpu", tokens_per_gpu)
    _positive("mfu", mfu)
    if mfu > 1:
        raise ValueError(f"mfu is a fraction of the peak, at most 1, got {mfu}")
    flops_per_second = peak_flops(gpu, "bf16") * mfu
    per_token = num_parameters * tokens_per_gpu / flops_per_second
    compute = {"forward": FORWARD_FLOPS_PER_PARAM_TOKEN * per_token,
               "backward": BACKWARD_FLOPS_PER_PARAM_TOKEN * per_token, "step": 0.0}
    communication = dict.fromkeys(PHASES, 0.0)
    for c in step_collectives(num_parameters, zero_stage, precision):
        communication[c.phase] += communication_seconds(c.bytes_per_gpu(num_gpus), link)
    return StepTime(compute, communication)


def tokens_to_hide_communication(
    num_parameters: float,
    num_gpus: int,
    zero_stage: int,
    link: str | LinkSpec,
    gpu: str | GPUSpec = "H100 SXM",
    mfu: float = 0.5,
    precision: str = "mixed_bf16_grads",
) -> float:
    """Tokens per GPU per step at which each phase's compute just covers its communication."""
    # Both grow linearly: one token's compute against the step's fixed communication.
    one = step_time(num_parameters, 1, num_gpus, zero_stage, link, gpu, mfu, precision)
    return max(one.communication[p] / one.compute[p] for p in ("forward", "backward"))


# ---------------------------------------------------------------------------------------------
# The measurement: real process groups
# ---------------------------------------------------------------------------------------------

# Ranks start from a fork server that has imported torch and these once, so a group starts in
# a fraction of a second instead of each rank importing torch again. Linux only: on macOS
# (where fork is unsafe) and Windows every rank is a fresh "spawn" interpreter.
_PRELOAD = ["lecture_utils.distributed", "torch.distributed.fsdp", "torch.distributed.optim",
            "torch.nn.parallel", "torch._dynamo"]
_LOOPBACK = {"linux": "lo", "darwin": "lo0"}
_started: list[Any] = []  # every rank process started, for leftover_workers()


def default_start_method() -> str:
    """'forkserver' on Linux, 'spawn' elsewhere."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


class DistributedRunError(RuntimeError):
    """A rank of a run_on_ranks group raised, crashed or hung."""


def run_on_ranks(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    timeout: float = 60.0,
    start_method: str | None = None,
) -> list[Any]:
    """Run fn(rank, world_size, *args) on `world_size` processes in one gloo group; their results.

    `fn` must be a module's top-level function (each rank is another Python process that imports
    it). A rank that raises, dies, or waits in a collective for a rank that never comes ends the
    whole group within `timeout` seconds with a DistributedRunError naming it.
    """
    _check_rank_function(fn)
    _check_size("world_size", world_size)
    _positive("timeout", timeout)
    method = start_method or default_start_method()
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start_method {method!r} is not available here; use one of "
                         f"{multiprocessing.get_all_start_methods()}")
    if method == "forkserver":
        multiprocessing.set_forkserver_preload(_PRELOAD)
    workdir = Path(tempfile.mkdtemp(prefix="course-ranks-"))
    # A collective gives up before the whole run does, so a hang is reported by the collective
    # that hung (gloo names it), not only by the clock: a second before (halfway through a run
    # shorter than 2 s), which leaves the ranks time to start, join and report.
    collective_timeout = max(timeout - 1.0, timeout / 2)
    context = None
    # torch logs each rank it terminates after a failure; the error we raise says it all.
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    try:
        try:
            context = torch.multiprocessing.start_processes(
                _rank_main, args=(fn, world_size, str(workdir), collective_timeout, args),
                nprocs=world_size, join=False, start_method=method)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            if "pickle" not in str(e).lower():
                raise
            raise TypeError(f"the arguments for {fn.__name__} must be picklable, to reach the "
                            f"rank processes: {e}") from e
        _started.extend(context.processes)
        deadline = time.monotonic() + timeout
        while not _all_exited(context.processes, fn, workdir):
            if time.monotonic() > deadline:
                if any(workdir.glob("rank*.error")):  # a rank gave up, but has not exited yet
                    raise _first_failure(fn, [p.exitcode for p in context.processes], workdir)
                stuck = [r for r, p in enumerate(context.processes) if p.is_alive()]
                raise DistributedRunError(
                    f"{fn.__name__} on {world_size} ranks did not finish within {timeout:g} s: "
                    f"rank(s) {stuck} still running. A rank that never reaches a collective the "
                    "others wait in hangs the group; raise `timeout` only if the work is slow.")
        # Our own ranks wrote these files a moment ago: trusted, so any picklable result loads.
        return [torch.load(workdir / f"rank{r}.pt", weights_only=False)
                for r in range(world_size)]
    finally:
        if context is not None:
            _stop(context.processes)
        shutil.rmtree(workdir, ignore_errors=True)
        spawn_log.setLevel(level)


def stop_workers() -> None:
    """Stop the fork server and multiprocessing's resource tracker; run_on_ranks restarts them.

    Both live until the program that started them exits. A Jupyter kernel, asked to shut down,
    first terminates its child processes and waits for them to go; the resource tracker ignores
    SIGTERM, so the kernel waits seconds before it is killed. Stopping them first avoids that.
    """
    if os.name != "posix":  # Windows has neither
        return
    from multiprocessing import forkserver, resource_tracker

    server = forkserver._forkserver
    if server._forkserver_pid is not None:
        # SIGTERM ends it at once; asked politely, it would spend a second unloading torch.
        os.kill(server._forkserver_pid, signal.SIGTERM)
    server._stop()  # first: it holds the tracker's pipe open too
    resource_tracker._resource_tracker._stop()


def all_reduce_rank_ids(
    rank: int, world_size: int, hang_rank: int = -1, fail_rank: int = -1
) -> float:
    """Sum of the rank ids over the group; `hang_rank` never arrives and `fail_rank` raises."""
    if rank == fail_rank:
        raise ValueError(f"rank {rank} was told to fail before the all-reduce")
    if rank == hang_rank:
        time.sleep(3600)  # a rank stuck elsewhere (a data loader, a deadlock): the others wait
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    return total.item()


def leftover_workers() -> list[int]:
    """Process ids of ranks started by run_on_ranks that are still running: [] after a clean run."""
    return [p.pid for p in _started if p.is_alive()]


def _all_exited(processes: Sequence[Any], fn: Callable[..., Any], workdir: Path) -> bool:
    """Wait briefly; True when every rank exited with its result. Raises if one failed."""
    running = [p.sentinel for p in processes if p.exitcode is None]
    if running:
        multiprocessing.connection.wait(running, timeout=0.05)
    # One snapshot of the exit codes, taken before any rank is stopped: who had failed by now.
    codes = [p.exitcode for p in processes]
    failed = [r for r, code in enumerate(codes) if code not in (None, 0)]
    unfinished = [r for r, code in enumerate(codes)
                  if code == 0 and not (workdir / f"rank{r}.pt").exists()]  # sys.exit(0)
    if failed or unfinished:
        raise _first_failure(fn, codes, workdir)
    return all(code == 0 for code in codes)


def _first_failure(fn: Callable[..., Any], codes: list[int | None],
                   workdir: Path) -> DistributedRunError:
    """The error of the rank that failed first: the others often fail only because it did."""
    world_size = len(codes)
    errors = {}
    for path in workdir.glob("rank*.error"):
        when, message = path.read_text().split("\n", 1)
        errors[int(path.stem.removeprefix("rank"))] = (float(when), message)
    # A rank killed outright (a signal, os._exit) writes no error; the others then fail with
    # "connection closed". It is the cause.
    killed = [r for r, code in enumerate(codes) if code not in (None, 0) and r not in errors]
    if killed:
        rank, code = killed[0], codes[killed[0]]
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return DistributedRunError(f"rank {rank} of {world_size} died in {fn.__name__} ({how}), "
                                   "without raising an exception")
    rank = min(errors, key=lambda r: errors[r][0])
    text = f"rank {rank} of {world_size} raised in {fn.__name__}: {errors[rank][1]}"
    if "Timed out" in text:
        absent = [r for r in range(world_size)
                  if r not in errors and not (workdir / f"rank{r}.pt").exists()]
        text += (f". Rank(s) {absent} neither finished nor failed: they never reached the "
                 "collective the others waited in.")
    return DistributedRunError(text)


def _stop(processes: Iterable[Any]) -> None:
    """Terminate, then kill, every rank still alive; reap them all."""
    alive = [p for p in processes if p.is_alive()]
    for p in alive:
        p.terminate()
    for p in alive:
        p.join(timeout=2)
        if p.is_alive():
            p.kill()
            p.join(timeout=2)


def _rank_main(rank: int, fn: Callable[..., Any], world_size: int, workdir: str,
               collective_timeout: float, args: tuple) -> None:
    """The body of each rank process: join the group, run fn, save its result atomically."""
    # All ranks are on this machine: talk over loopback (hostname lookups fail in containers).
    if sys.platform in _LOOPBACK:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", _LOOPBACK[sys.platform])
    torch.set_num_threads(1)  # world_size processes share the cores; one thread each
    # FSDP2 warns when a model returns a view (the Cruncher squeezes its output); we never
    # modify that output in place, which is what the warning is about.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view")
    joined = False
    try:
        dist.init_process_group("gloo", init_method=f"file://{workdir}/store", rank=rank,
                                world_size=world_size,
                                timeout=timedelta(seconds=collective_timeout))
        joined = True
        # Every rank finishes joining before any runs fn. Otherwise a rank that fails at once
        # closes its sockets while another is still connecting: that one then fails inside
        # init_process_group, and gloo logs it on stderr, instead of waiting in a collective.
        dist.barrier()
        result = fn(rank, world_size, *args)
        partial = Path(workdir) / f".rank{rank}.pt.partial"
        torch.save(result, partial)  # inside the try: an unpicklable result is this rank's error
        os.replace(partial, Path(workdir) / f"rank{rank}.pt")
    except BaseException as e:
        # When and why this rank failed, for the parent to find the first failure of the group.
        _write_atomic(Path(workdir) / f"rank{rank}.error",
                      f"{time.time()!r}\n{type(e).__name__}: {str(e)[:1000]}")
        raise
    finally:
        if joined:
            dist.destroy_process_group()


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _check_rank_function(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module in (None, "__main__") or "<" in qualname or "." in qualname:
        raise ValueError(
            f"fn must be a top-level function of an importable module, got {qualname or fn!r} "
            f"from {module!r}: each rank is a new process that imports it by name. Move it into "
            "a .py file (for example one in lecture_utils/) and import it from there.")


# ---------------------------------------------------------------------------------------------
# Watching the collectives
# ---------------------------------------------------------------------------------------------

# c10d's ops, by what they compute. The payload is the whole tensor: the larger of an
# all-gather's (output, input) or a reduce-scatter's (output, input); an all-reduce's buffer.
_OP_KINDS = {
    "allreduce_": "all_reduce", "allreduce_coalesced_": "all_reduce",
    "_allgather_base_": "all_gather", "allgather_": "all_gather",
    "allgather_into_tensor_coalesced_": "all_gather", "allgather_coalesced_": "all_gather",
    "_reduce_scatter_base_": "reduce_scatter", "reduce_scatter_": "reduce_scatter",
    "reduce_scatter_tensor_coalesced_": "reduce_scatter",
    "broadcast_": "broadcast",
}


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(x) for x in obj)
    return 0


class CollectiveLog(TorchDispatchMode):
    """Records every c10d collective called inside it: (kind, phase, payload bytes).

    DDP's gradient all-reduce, FSDP's gathers and ZeroRedundancyOptimizer's broadcasts all go
    through PyTorch's dispatcher as c10d ops, so one dispatch mode sees them all. Set `phase`
    before each part of the step to label what follows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.phase = "forward"
        self.calls: list[Collective] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "c10d":
            name = func.overloadpacket.__name__
            kind = _OP_KINDS.get(name, name)
            if kind in ("all_gather", "reduce_scatter"):
                payload = max(_tensor_bytes(args[0]), _tensor_bytes(args[1]))
            else:
                payload = _tensor_bytes(args[0])
            self.calls.append(Collective(kind, self.phase, payload))
        return func(*args, **(kwargs or {}))


def payload_by_kind(calls: Iterable[Collective]) -> dict[tuple[str, str], int]:
    """Total payload bytes of `calls`, by (phase, kind)."""
    totals: dict[tuple[str, str], int] = {}
    calls = list(calls) if isinstance(calls, Iterable) else calls
    if not isinstance(calls, list) or not all(isinstance(c, Collective) for c in calls):
        raise TypeError(f"calls must be a list of Collective, e.g. CollectiveLog().calls, got "
                        f"{calls!r}")
    for c in calls:
        totals[(c.phase, c.kind)] = totals.get((c.phase, c.kind), 0) + int(c.payload_bytes)
    return totals


# ---------------------------------------------------------------------------------------------
# Training the Cruncher on several ranks
# ---------------------------------------------------------------------------------------------

STRATEGIES = ("ddp", "zero1", "fsdp", "fsdp_keep_gathered")
SINGLE_PROCESS = "single_process"  # the reference: one process trains on the whole batch


@dataclass(frozen=True)
class TrainConfig:
    """A small Cruncher and its data: D x D layers, a global batch, a few AdamW steps."""

    dim: int = 64
    num_layers: int = 4
    batch: int = 32  # the global batch: each of N ranks trains on batch / N rows
    steps: int = 3
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "num_layers", "batch", "steps"):
            _check_size(name, getattr(self, name))
        _positive("lr", self.lr)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")


def cruncher_and_batch(config: TrainConfig) -> tuple[Cruncher, torch.Tensor, torch.Tensor]:
    """The seeded Cruncher, inputs (batch, dim) and targets (batch,): the same on every rank."""
    _check_config(config)
    generator = torch.Generator().manual_seed(config.seed)
    model = Cruncher(config.dim, config.num_layers, generator=generator)
    x = torch.randn(config.batch, config.dim, generator=generator)
    y = torch.randn(config.batch, generator=generator)
    return model, x, y


def train_single_process(config: TrainConfig) -> list[Float[torch.Tensor, "*shape"]]:
    """Train the Cruncher on the whole batch in this process; its weights after config.steps."""
    model, x, y = cruncher_and_batch(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    for _ in range(config.steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views of one buffer count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if hasattr(t, "to_local"):  # a DTensor: this rank holds only its local shard
            t = t.to_local()
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors must hold only tensors, got a {type(t).__name__}")
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def zero_partition(numels: Sequence[int], world_size: int) -> list[list[int]]:
    """Parameter sizes each rank owns under ZeroRedundancyOptimizer: largest first, to the lightest.

    It shards whole tensors, not elements, so the ranks are balanced only as well as the
    tensor sizes allow.
    """
    _check_size("world_size", world_size)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numels):
        raise ValueError(f"numels must be parameter sizes (ints >= 0), got {list(numels)!r}")
    owned: list[list[int]] = [[] for _ in range(world_size)]
    totals = [0] * world_size
    for numel in sorted(numels, reverse=True):
        rank = totals.index(min(totals))
        owned[rank].append(numel)
        totals[rank] += numel
    return owned


def train_on_rank(
    rank: int, world_size: int, strategies: Sequence[str], config: TrainConfig
) -> dict[str, dict]:
    """One rank's side of data-parallel training with each strategy in turn; what it measured.

    Run it with run_on_ranks. One group trains every strategy, so the ranks start only once.
    Rank 0 then trains the model alone on the whole batch too: the reference (SINGLE_PROCESS).
    """
    results = {s: _train_one_strategy(rank, world_size, s, config) for s in strategies}
    if rank == 0:
        # Here, not in the caller: a process's first optimizer imports torch._dynamo, a second's
        # work that the ranks' fork server has done once for all of them.
        results[SINGLE_PROCESS] = {"final_weights": train_single_process(config)}
    return results


def _train_one_strategy(rank: int, world_size: int, strategy: str, config: TrainConfig) -> dict:
    _check_strategy(strategy)
    if config.batch % world_size or config.dim % world_size:
        raise ValueError(f"batch ({config.batch}) and dim ({config.dim}) must be multiples of "
                         f"world_size ({world_size}): each rank takes an equal share")
    model, x, y = cruncher_and_batch(config)  # the same seed: every rank starts identical
    rows = slice(rank * config.batch // world_size, (rank + 1) * config.batch // world_size)
    x, y = x[rows], y[rows]
    setup = CollectiveLog()
    setup.phase = "setup"
    with setup:
        net, optimizer = wrap_for_strategy(model, strategy, config.lr)
    for step in range(config.steps):
        log = CollectiveLog() if step == config.steps - 1 else contextlib.nullcontext(None)
        with log as watching:
            optimizer.zero_grad()
            loss = F.mse_loss(net(x), y)
            if watching:
                watching.phase = "backward"
            loss.backward()
            if watching:
                watching.phase = "step"
            optimizer.step()
    local_state = optimizer.optim.state if strategy == "zero1" else optimizer.state
    moments = [t for s in local_state.values() for k, t in s.items() if k != "step"]
    counters = [s["step"] for s in local_state.values() if "step" in s]
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in net.parameters()]
    return {
        "weights": storage_bytes(net.parameters()),
        "gradients": storage_bytes(p.grad for p in net.parameters()),
        "optimizer_state": storage_bytes(moments),
        "step_counters": storage_bytes(counters),
        "owned_parameters": sum(s["exp_avg"].numel() for s in local_state.values()),
        "setup_collectives": [(c.kind, c.phase, c.payload_bytes) for c in setup.calls],
        "collectives": [(c.kind, c.phase, c.payload_bytes) for c in log.calls],
        "final_weights": [p.detach().clone() for p in full] if rank == 0 else [],
    }


def wrap_for_strategy(
    model: Cruncher, strategy: str, lr: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model and AdamW optimizer of one data-parallel strategy, on this rank."""
    _check_strategy(strategy)
    if strategy in ("ddp", "zero1"):
        from torch.nn.parallel import DistributedDataParallel

        # gradient_as_bucket_view: the gradients *are* DDP's communication buffers. Without it
        # DDP keeps a second copy of every gradient in its buckets.
        net = DistributedDataParallel(model, gradient_as_bucket_view=True)
        if strategy == "ddp":
            return net, torch.optim.AdamW(net.parameters(), lr=lr)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return net, ZeroRedundancyOptimizer(net.parameters(), optimizer_class=torch.optim.AdamW,
                                            lr=lr)
    from torch.distributed.fsdp import fully_shard

    keep = strategy == "fsdp_keep_gathered"
    for layer in model.layers:  # one FSDP unit per layer: gathered just before it runs
        fully_shard(layer, reshard_after_forward=not keep)
    # The root holds the head's weight. Left to its default, FSDP2 keeps the root gathered after
    # the forward (the backward starts with it); resharding it too gathers every unit twice,
    # as the ZeRO paper counts stage 3.
    fully_shard(model, reshard_after_forward=not keep)
    return model, torch.optim.AdamW(model.parameters(), lr=lr)


@dataclass(frozen=True)
class StrategyRun:
    """What every rank of one strategy measured, and how far its weights are from one process."""

    strategy: str
    world_size: int
    num_parameters: int
    ranks: list[dict]
    max_weight_difference: float  # max |w_distributed - w_single_process| over all weights
    reference: list[torch.Tensor] = field(default_factory=list)  # w_single_process

    def collectives(self, rank: int = 0) -> list[Collective]:
        """The collectives `rank` called in the last training step."""
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < len(self.ranks):
            raise ValueError(f"rank must be in 0..{len(self.ranks) - 1}, got {rank!r}")
        return [Collective(*c) for c in self.ranks[rank]["collectives"]]


def measure_strategies(
    world_size: int,
    strategies: Sequence[str] = STRATEGIES,
    config: TrainConfig | None = None,
    *,
    timeout: float = 60.0,
) -> dict[str, StrategyRun]:
    """Train the Cruncher with each strategy on `world_size` ranks; compare with one process."""
    config = TrainConfig() if config is None else _check_config(config)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if isinstance(strategies, str) or unknown or not strategies:
        raise ValueError(f"strategies must be a non-empty list of {STRATEGIES}, got {strategies!r}")
    ranks = run_on_ranks(train_on_rank, world_size, list(strategies), config, timeout=timeout)
    reference = ranks[0][SINGLE_PROCESS]["final_weights"]
    runs = {}
    for strategy in strategies:
        measured = [r[strategy] for r in ranks]
        difference = max((a - b).abs().max().item()
                         for a, b in zip(measured[0]["final_weights"], reference, strict=True))
        runs[strategy] = StrategyRun(strategy, world_size,
                                     cruncher_num_parameters(config.dim, config.num_layers),
                                     measured, difference, reference)
    return runs


def predicted_rank_bytes(strategy: str, config: TrainConfig, world_size: int) -> list[GPUBytes]:
    """Each rank's bytes of weights, gradients and AdamW moments, from the formulas (fp32)."""
    _check_strategy(strategy)
    _check_config(config)
    numels = [config.dim * config.dim] * config.num_layers + [config.dim]
    total = cruncher_num_parameters(config.dim, config.num_layers)
    if strategy == "zero1":
        # Stage 1 as the formula says, except that whole tensors are owned: use their sizes.
        return [GPUBytes(4 * total, 0, 4 * total, 8 * sum(owned))
                for owned in zero_partition(numels, world_size)]
    stage = 0 if strategy == "ddp" else 3
    return [bytes_per_gpu(total, world_size, stage)] * world_size


def expected_collectives(strategy: str, num_parameters: int) -> list[Collective]:
    """The collectives of one fp32 step of `strategy`, as PyTorch's implementation issues them."""
    _check_strategy(strategy)
    full = 4 * num_parameters  # fp32 weights and gradients
    if strategy == "ddp":
        return step_collectives(num_parameters, 0)
    if strategy == "zero1":
        # ZeroRedundancyOptimizer keeps DDP's all-reduce (every rank gets every summed gradient,
        # then ignores most of it), then each rank broadcasts the shard it updated.
        return [Collective("all_reduce", "backward", full), Collective("broadcast", "step", full)]
    if strategy == "fsdp":
        return step_collectives(num_parameters, 3)
    # Kept gathered after the forward: no second all-gather in the backward.
    return [Collective("all_gather", "forward", full), Collective("reduce_scatter", "backward", full)]


# ---------------------------------------------------------------------------------------------
# Checks that keep the helpers honest
# ---------------------------------------------------------------------------------------------

def _check_strategy(strategy: Any) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")


def _check_config(config: Any) -> TrainConfig:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return config


def _check_runs(runs: Any) -> None:
    if not isinstance(runs, dict) or not all(isinstance(r, StrategyRun) for r in runs.values()):
        raise TypeError(f"runs must be the dict measure_strategies returns, got "
                        f"{type(runs).__name__}")


def _check_links(links: Any) -> None:
    if (isinstance(links, str) or not isinstance(links, Sequence) or not links
            or not all(isinstance(link, (str, LinkSpec)) for link in links)):
        raise TypeError(f"links must be a non-empty list of link names such as "
                        f"['NVLink 4'], got {links!r}")


# ---------------------------------------------------------------------------------------------
# Tables and figures for the notebook
# ---------------------------------------------------------------------------------------------

def format_stage_table(
    num_parameters: float,
    num_gpus: int,
    memory_per_gpu: float,
    optimizer: str = "adamw",
    precision: str = "fp32",
) -> str:
    """Bytes per GPU (GB) by part at each ZeRO stage, and the largest model that fits."""
    lines = [f"{'stage':>14} | {'weights':>8} {'bf16 copy':>9} {'grads':>8} {'optimizer':>9} "
             f"{'total':>8} | largest model on {num_gpus} x {memory_per_gpu / GB:g} GB"]
    for stage in ZERO_STAGES:
        b = bytes_per_gpu(num_parameters, num_gpus, stage, optimizer, precision)
        fits = max_parameters_sharded(num_gpus, memory_per_gpu, stage, optimizer, precision)
        lines.append(f"{STAGE_NAMES[stage]:>14} | {b.weights / GB:8.1f} {b.weights_copy / GB:9.1f} "
                     f"{b.gradients / GB:8.1f} {b.optimizer_state / GB:9.1f} {b.total / GB:8.1f} | "
                     f"{fits / 1e9:6.1f} B parameters")
    return "\n".join(lines)


def format_rank_bytes(runs: dict[str, StrategyRun], config: TrainConfig) -> str:
    """Each rank's measured bytes next to the formula's, for every strategy in `runs`."""
    _check_runs(runs)
    lines = [f"{'strategy':>20} {'rank':>4} | {'weights':>8} {'grads':>8} {'AdamW m,v':>9} "
             f"{'steps':>5} | formula: weights, grads, m+v"]
    for strategy, run in runs.items():
        predicted = predicted_rank_bytes(strategy, config, run.world_size)
        for rank, (measured, p) in enumerate(zip(run.ranks, predicted, strict=True)):
            same = (measured["weights"], measured["gradients"], measured["optimizer_state"]) == (
                p.weights, p.gradients, p.optimizer_state)
            lines.append(
                f"{strategy if rank == 0 else '':>20} {rank:>4} | {measured['weights']:8,} "
                f"{measured['gradients']:8,} {measured['optimizer_state']:9,} "
                f"{measured['step_counters']:5} | {int(p.weights):,}, {int(p.gradients):,}, "
                f"{int(p.optimizer_state):,} {'(equal)' if same else '(DIFFERENT)'}")
    return "\n".join(lines)


def format_collectives(runs: dict[str, StrategyRun]) -> str:
    """Payload bytes each strategy's step moved, by phase and kind, and bytes sent per rank."""
    _check_runs(runs)
    lines = [f"{'strategy':>20} | {'phase':>8} {'collective':>14} {'payload':>8} "
             f"{'formula':>8} | sent per rank (ring)"]
    for strategy, run in runs.items():
        seen = payload_by_kind(run.collectives())
        expected = payload_by_kind(expected_collectives(strategy, run.num_parameters))
        total = 0.0
        for i, (phase, kind) in enumerate(sorted(expected, key=lambda k: PHASES.index(k[0]))):
            sent = ring_bytes_per_gpu(kind, seen.get((phase, kind), 0), run.world_size)
            total += sent
            lines.append(f"{strategy if i == 0 else '':>20} | {phase:>8} {kind:>14} "
                         f"{seen.get((phase, kind), 0):8,} {expected[(phase, kind)]:8,} | "
                         f"{sent:9,.0f}")
        lines.append(f"{'':>20} | {'':>8} {'':>14} {'':>8} {'':>8} | {total:9,.0f} in all")
    return "\n".join(lines)


@dataclass(frozen=True)
class StageStepTimes:
    """One ZeRO stage in a step-time comparison: its bytes, and its step's time on each link."""

    stage: int
    memory: float  # bytes of training state per GPU (activations excluded)
    sent: float  # bytes each GPU sends per step (ring collectives)
    times: dict[str, StepTime]  # by link name

    @property
    def compute(self) -> float:
        """Seconds of compute per step, the same on every link."""
        return sum(next(iter(self.times.values())).compute.values())


def stage_step_times(
    num_parameters: float,
    tokens_per_gpu: float,
    num_gpus: int,
    links: Sequence[str | LinkSpec] = ("NVLink 4", "InfiniBand NDR"),
    gpu: str | GPUSpec = "H100 SXM",
    mfu: float = 0.5,
    precision: str = "mixed_bf16_grads",
) -> list[StageStepTimes]:
    """Each ZeRO stage's bytes per GPU, bytes sent, and step time on each of `links` (AdamW)."""
    _check_links(links)
    specs = [link if isinstance(link, LinkSpec) else lookup_link(link) for link in links]
    return [StageStepTimes(
        stage,
        bytes_per_gpu(num_parameters, num_gpus, stage, "adamw", precision).total,
        communication_bytes_per_gpu(num_parameters, num_gpus, stage, precision),
        {spec.name: step_time(num_parameters, tokens_per_gpu, num_gpus, stage, spec, gpu, mfu,
                              precision) for spec in specs},
    ) for stage in ZERO_STAGES]


def format_step_times(
    num_parameters: float,
    tokens_per_gpu: float,
    num_gpus: int,
    links: Sequence[str | LinkSpec] = ("NVLink 4", "InfiniBand NDR"),
    gpu: str | GPUSpec = "H100 SXM",
    mfu: float = 0.5,
    precision: str = "mixed_bf16_grads",
) -> str:
    """Per stage: memory per GPU, bytes sent per step, and seconds of compute vs communication."""
    rows = stage_step_times(num_parameters, tokens_per_gpu, num_gpus, links, gpu, mfu, precision)
    names = list(rows[0].times)
    widths = [max(len(name), 15) for name in names]  # a cell is "0.62 s (0.00 s)"
    lines = [f"{'stage':>13} | {'GB/GPU':>6} | {'sent':>6} | {'compute':>7} | "
             + " | ".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True))]
    for row in rows:
        cells = [f"{sum(t.communication.values()):.2f} s ({t.exposed:.2f} s)"
                 for t in row.times.values()]
        lines.append(f"{STAGE_NAMES[row.stage]:>13} | {row.memory / GB:6.1f} | "
                     f"{row.sent / GB:3.0f} GB | {row.compute:5.2f} s | "
                     + " | ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    lines.append("(communication seconds per step, and in brackets those no compute hides)")
    return "\n".join(lines)


def plot_max_parameters_vs_gpus(
    memory_per_gpu: float = 80 * GB,
    optimizer: str = "adamw",
    precision: str = "fp32",
    max_gpus: int = 1024,
) -> Any:
    """Figure: the largest model whose training state fits, against the number of GPUs."""
    import matplotlib.pyplot as plt

    _check_size("max_gpus", max_gpus)

    gpus = [2**k for k in range(int(math.log2(max_gpus)) + 1)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for stage in ZERO_STAGES:
        fits = [max_parameters_sharded(n, memory_per_gpu, stage, optimizer, precision) / 1e9
                for n in gpus]
        ax.plot(gpus, fits, marker="o", label=STAGE_NAMES[stage])
    ax.axvline(8, color="gray", linestyle=":", linewidth=1.5)
    ax.text(8 * 1.1, 0.9, "one 8-GPU server", color="gray", transform=ax.get_xaxis_transform())
    ax.set(xscale="log", yscale="log", xlabel="GPUs", ylabel="largest model (B parameters)",
           title=f"Training state that fits in {memory_per_gpu / GB:g} GB per GPU "
                 f"({optimizer}, {precision})")
    ax.set_xticks(gpus[::2], [str(n) for n in gpus[::2]])
    ax.legend(loc="upper left", title="activations not counted", title_fontsize=10)
    fig.tight_layout()
    return fig


def plot_step_times(
    num_parameters: float,
    tokens_per_gpu: float,
    num_gpus: int,
    links: Sequence[str | LinkSpec] = ("NVLink 4", "InfiniBand NDR"),
    gpu: str | GPUSpec = "H100 SXM",
    mfu: float = 0.5,
    precision: str = "mixed_bf16_grads",
) -> Any:
    """Figure: each stage's step time on each link, compute and exposed communication stacked."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = stage_step_times(num_parameters, tokens_per_gpu, num_gpus, links, gpu, mfu, precision)
    memory = (gpu if isinstance(gpu, GPUSpec) else lookup_gpu(gpu)).memory_bytes
    names = [STAGE_NAMES[row.stage] for row in rows]
    compute = [row.compute for row in rows]
    # A run whose training state does not fit could not start: hatch its bar.
    too_big = [c if row.memory > memory else 0 for c, row in zip(compute, rows, strict=True)]
    fig, axes = plt.subplots(1, len(links), figsize=(10, 3.8), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, link in zip(axes, rows[0].times, strict=True):
        ax.barh(names, compute, color="#0072B2", label="compute")
        ax.barh(names, [row.times[link].exposed for row in rows], left=compute, color="#D55E00",
                label="communication not hidden")
        ax.barh(names, too_big, color="none", edgecolor="white", hatch="//", linewidth=0,
                label=f"training state does not fit in {memory / GB:g} GB")
        ax.set(title=f"over {link}", xlabel="seconds per step")
    axes[0].invert_yaxis()  # the axes share y: invert once, so DDP is on top
    handles, labels = axes[0].get_legend_handles_labels()
    handles[-1] = Patch(facecolor="#0072B2", edgecolor="white", hatch="//")  # visible in the key
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10)
    fig.suptitle(f"{num_parameters / 1e9:g}B parameters, {tokens_per_gpu:,.0f} tokens per GPU, "
                 f"{num_gpus} GPUs, MFU {mfu}", fontsize=12)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------
# "Check yourself" exercises of notebook 11
# ---------------------------------------------------------------------------------------------

EXERCISES = Exercises("11")

# Exercises 3 to 5 share one setup: DDP, a 7B model, bf16 gradients, 8 GPUs, one InfiniBand NDR
# card (50 GB/s) per GPU, H100s at MFU 0.5.
_GRADIENT_BYTES = 7e9 * 2
_SENT = ring_bytes_per_gpu("all_reduce", _GRADIENT_BYTES, 8)


@EXERCISES.checker(1, "GB per GPU: 13B, AdamW fp32, 16 GPUs, ZeRO-2",
                   wants="a number of GB per GPU (1 GB = 1e9 bytes), within 2%")
def _check_1(answer: Any) -> Feedback:
    def gb(stage: int) -> float:
        return bytes_per_gpu(13e9, 16, stage).total / GB

    return check_number(answer, gb(2), unit="GB", hints={
        gb(0): "that is plain DDP: ZeRO-2 splits the gradients and the optimizer state.",
        gb(1): "that is ZeRO-1: stage 2 splits the gradients too.",
        gb(3): "that is ZeRO-3: at stage 2 every GPU still holds all the fp32 weights.",
        gb(2) * GB: "that is in bytes; the question asks for GB (1e9 bytes).",
    })


@EXERCISES.checker(2, "largest model: 8 x 80 GB, ZeRO-2, bf16 recipe",
                   wants="a number of parameters (e.g. 1.23e10), within 2%")
def _check_2(answer: Any) -> Feedback:
    def fits(stage: int, precision: str = "mixed_bf16_grads") -> float:
        return max_parameters_sharded(8, 80 * GB, stage, "adamw", precision)

    return check_number(answer, fits(2), unit="parameters", hints={
        # ZeRO-1 of the bf16 recipe and ZeRO-2 in fp32 both keep 5.5 bytes per parameter.
        fits(1): "that is ZeRO-1 here (or ZeRO-2 in fp32): stage 2 splits the bf16 gradients too.",
        fits(2, "mixed"): "that is the recipe with fp32 gradients; here they are bf16, 2 bytes.",
        80 * GB / (4 + 2 + (2 + 8) / 8): "the fp32 master weights are read only by the "
                                         "optimizer: ZeRO-1 already splits them.",
        fits(0): "that is plain DDP (16 bytes per parameter on every GPU).",
        fits(3): "that is ZeRO-3: at stage 2 the bf16 weights stay whole on every GPU.",
    })


@EXERCISES.checker(3, "bytes each GPU sends: DDP, 7B, bf16 gradients, 8 GPUs",
                   wants="a number of bytes per GPU, within 2%")
def _check_3(answer: Any) -> Feedback:
    return check_number(answer, _SENT, unit="bytes", hints={
        _GRADIENT_BYTES: "that is the gradients' size; a ring all-reduce sends 2 (N-1)/N times it.",
        # Twice the bf16 gradients: the ring's factor without its (N-1)/N, or fp32's 4 bytes.
        2 * _GRADIENT_BYTES: "that is 2 x the bf16 gradients (or the fp32 gradients' size): a "
                             "ring of 8 sends 2 (N-1)/N = 1.75 times the 2-byte gradients.",
        _SENT / 2: "that is a reduce-scatter alone; an all-reduce adds an all-gather.",
        _SENT * 2: "the gradients are bf16: 2 bytes each, not 4.",
        _SENT * 8: "that is in bits; the question asks for bytes.",
    })


@EXERCISES.checker(4, "seconds for it over InfiniBand NDR", wants="a number of seconds, within 2%")
def _check_4(answer: Any) -> Feedback:
    infiniband = lookup_link("InfiniBand NDR").bandwidth  # 50e9 bytes/s
    expected = _SENT / infiniband
    # Exercise 3's slips carried over: the right bandwidth, the wrong bytes. (Its slips that
    # double or halve the answer have hints below that name them with this exercise's own.)
    wrong_bytes = "the bandwidth is right, the bytes are not: check that exercise 3 passes first."
    return check_number(answer, expected, unit="s", hints={
        communication_seconds(_SENT, "NVLink 4"): "that is over NVLink; between servers it is "
                                                  "InfiniBand, 50 GB/s per GPU.",
        _SENT / 400e9: "400 Gb/s is bits: 50e9 bytes per second.",
        _SENT * 8 / infiniband: "that counts the bytes as bits (x 8) against a rate in bytes "
                                "per second: 400 Gb/s is 50e9 bytes/s, and bytes stay bytes.",
        2 * expected: "twice the answer: 400 Gb/s is already per direction (do not halve it), "
                      "and the gradients are 2-byte bf16, as in exercise 3.",
        _GRADIENT_BYTES / infiniband: wrong_bytes,
        2 * _GRADIENT_BYTES / infiniband: wrong_bytes,
        expected / 2: "half the answer: an all-reduce sends 2 (N-1)/N times the gradients, "
                      "not (N-1)/N (check exercise 3), and 400 Gb/s is per direction: do not "
                      "double it.",
    })


@EXERCISES.checker(5, "tokens per GPU that hide DDP's all-reduce",
                   wants="a number of tokens per GPU per step, within 2%")
def _check_5(answer: Any) -> Feedback:
    delivered = peak_flops("H100 SXM", "bf16") * 0.5  # FLOP/s at MFU 0.5
    bandwidth = lookup_link("InfiniBand NDR").bandwidth
    # The backward of T tokens, 4 P T FLOPs, takes as long as the all-reduce of P parameters.
    seconds_per_parameter = ring_bytes_per_gpu("all_reduce", 2, 8) / bandwidth
    expected = seconds_per_parameter * delivered / 4
    return check_number(answer, expected, unit="tokens", hints={
        expected * 4 / 6: "the all-reduce overlaps the backward pass only: 4 N T FLOPs, not 6.",
        # Leaving the MFU out and sending fp32 gradients both double the answer.
        expected * 2: "twice the answer: did you leave out the MFU (0.5), or send 4-byte "
                      "gradients instead of bf16's 2?",
        expected * 4: "4x the answer: the FLOP/s delivered is the peak times the MFU, "
                      "0.5 x 989.4e12, not the peak divided by it.",
        expected / 2: "half the answer: an all-reduce sends 2 (N-1)/N times the gradients "
                      "(a reduce-scatter, then an all-gather), not (N-1)/N.",
        expected * 8 / 7: "that takes a ring's factor as 2, right for a huge N (section 4 has "
                          "1024 GPUs); for 8 GPUs it is 2 (N-1)/N = 1.75.",
        expected / 8: "400 Gb/s is bits: 50e9 bytes per second.",
        expected * bandwidth / lookup_link("NVLink 4").bandwidth: "that is over NVLink; the "
                                                                  "setup is InfiniBand, 50 GB/s.",
    })
