"""Notebook 07: the training loop, and what makes it repeatable and safe to stop.

Read top to bottom: randomness (one seed per source), data (a checksummed token file read
lazily with np.memmap, random windows as batches), a tiny next-byte model and the loop that
trains it, then checkpoints (atomic writes, every random state, clear errors on bad files).

Units: bytes, tokens, nats (natural-log cross-entropy per token).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import mmap
import os
import pickle
import random
import re
import subprocess
import tempfile
import unittest.mock
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from lecture_utils.exercises import (
    CORRECT,
    UNANSWERED,
    Exercises,
    Feedback,
    check_count,
    wrong,
)
from lecture_utils.models import Linear

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TOKENS_PATH = DATA_DIR / "tokens.bin"  # written by data/make_tokens.py
TOKEN_DTYPE = np.dtype("<u2")  # little-endian uint16, as the script writes it
VOCAB_SIZE = 256  # byte-level tokens
CHECKPOINT_FORMAT = 2  # 2: records the optimizer's class and the model's layout


def _check_positive_int(name: str, value: Any) -> None:
    """Raise if `value` is not an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")


# ----------------------------------------------------------------------------------------------
# Randomness


def seed_everything(seed: int) -> None:
    """Seed every global source of randomness: Python, NumPy, torch (CPU and every GPU)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:  # NumPy's legacy seeding accepts exactly this range
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU generator and those of all devices
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)  # already done above; explicit for the reader


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator of its own (for the data order, or the init), apart from the global one."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    # manual_seed also takes negative seeds (it folds them onto the same 2**64 states); one
    # plain range, as in seed_everything, is easier to reason about.
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return torch.Generator(device="cpu").manual_seed(seed)


def get_rng_states(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state (torch CPU/CUDA/MPS, NumPy, Python, `generator`) as weights_only types."""
    # torch.load(weights_only=True) accepts tensors, dicts, lists, ints, floats, str and None.
    # NumPy's state holds an ndarray and Python's a tuple of 625 ints: turn both into tensors.
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "torch_mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,  # None or a float
        },
        "data_generator": None if generator is None else generator.get_state(),
    }


def set_rng_states(states: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what get_rng_states saved (and `generator`'s state, if given)."""
    torch.set_rng_state(states["torch_cpu"])
    cuda_states = states["torch_cuda"]
    if cuda_states and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the ones present here.
        for index in range(min(len(cuda_states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda_states[index], device=index)
    mps_state = states.get("torch_mps")  # .get: states saved before MPS was recorded lack it
    if mps_state is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(mps_state)
    np_state = states["numpy"]
    np.random.set_state(
        (
            np_state["bit_generator"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = states["python"]
    random.setstate(
        (py_state["version"], tuple(py_state["internal"].tolist()), py_state["gauss_next"])
    )
    if generator is not None:
        if states["data_generator"] is None:
            raise ValueError("these states hold no data generator state to restore")
        generator.set_state(states["data_generator"])


# ----------------------------------------------------------------------------------------------
# Data: a checksummed token file, read lazily


class DataChecksumError(ValueError):
    """A data file whose SHA-256 is not the one recorded when it was made."""


def sha256_of_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks so memory stays small."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_expected_sha256(checksum_path: str | Path) -> str:
    """The hex digest in a `sha256sum`-format file ("<hex>  <name>")."""
    checksum_path = Path(checksum_path)
    if not checksum_path.exists():
        raise FileNotFoundError(
            f"no checksum file {checksum_path.name}: run `python data/make_tokens.py` to write it"
        )
    fields = checksum_path.read_text().split()
    if not fields or len(fields[0]) != 64:
        raise ValueError(f"{checksum_path.name} does not start with a 64-digit SHA-256")
    return fields[0].lower()


def load_tokens(
    path: str | Path = TOKENS_PATH, expected_sha256: str | None = None
) -> np.memmap:
    """The token file as a read-only np.memmap (no bytes read yet), after checking its SHA-256."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no token file {path.name}: run `python data/make_tokens.py` to build it"
        )
    if expected_sha256 is None:
        expected_sha256 = read_expected_sha256(path.with_suffix(".sha256"))
    # Hashing reads the file once; for a corpus of terabytes you would check it once, on arrival.
    actual = sha256_of_file(path)
    if actual != expected_sha256.lower():
        raise DataChecksumError(
            f"{path.name} has SHA-256 {actual[:12]}... but {expected_sha256[:12]}... was recorded "
            f"when it was made: the file is damaged or was built from different text. "
            f"Rebuild it with `python data/make_tokens.py` (or restore it from git)."
        )
    if path.stat().st_size % TOKEN_DTYPE.itemsize:
        raise ValueError(f"{path.name} is not a whole number of {TOKEN_DTYPE} tokens")
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r")


def count_windows(num_tokens: int, context_length: int) -> int:
    """Distinct training windows in `num_tokens` tokens: T inputs + 1 target, so N - T starts."""
    _check_positive_int("num_tokens", num_tokens)
    _check_positive_int("context_length", context_length)
    return max(num_tokens - context_length, 0)


def _check_token_array(data: Any) -> None:
    """Raise unless `data` is a 1-D NumPy array (np.memmap included) of integer token ids."""
    if isinstance(data, torch.Tensor):
        raise TypeError(
            "data must be a NumPy array of tokens, got a torch.Tensor: pass data.numpy() "
            "(get_batch turns the windows it reads into tensors)"
        )
    if not isinstance(data, np.ndarray):
        raise TypeError(
            f"data must be a 1-D NumPy array of tokens (load_tokens() gives one), got "
            f"{type(data).__name__}: convert it with np.asarray(data)"
        )
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D array of tokens, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"data must hold integer token ids, got dtype {data.dtype}")


def get_batch(
    data: np.ndarray,
    batch_size: int,
    context_length: int,
    device: torch.device | str,
    generator: torch.Generator,
) -> tuple[Int[torch.Tensor, "batch seq"], Int[torch.Tensor, "batch seq"]]:
    """Random windows of `context_length` tokens (inputs) and the same windows shifted by one."""
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("context_length", context_length)
    _check_token_array(data)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (make one with make_generator(seed)), "
            f"got {type(generator).__name__}"
        )
    if generator.device.type != "cpu":
        raise ValueError("the data generator must live on the CPU (the indices are made there)")
    num_windows = count_windows(len(data), context_length)
    if num_windows == 0:
        raise ValueError(
            f"{len(data)} tokens cannot fill one window of {context_length} inputs + 1 target: "
            f"use a shorter context_length or more data"
        )
    starts = torch.randint(0, num_windows, (batch_size,), generator=generator).numpy()
    # Fancy indexing a memmap reads only these batch_size * (context_length + 1) tokens.
    windows = data[starts[:, None] + np.arange(context_length + 1)]
    windows = torch.from_numpy(windows.astype(np.int64))  # embeddings want int64 indices
    device = torch.device(device)
    if device.type == "cuda":
        # Page-locked memory lets the copy run asynchronously while the GPU keeps working.
        windows = windows.pin_memory().to(device, non_blocking=True)
    else:
        windows = windows.to(device)
    return windows[:, :-1], windows[:, 1:]


def resident_memory_bytes() -> int:
    """Resident set size of this process right now, in bytes (RAM it actually occupies)."""
    statm = Path("/proc/self/statm")
    if statm.exists():  # Linux: the second field is resident pages
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # macOS and other Unixes: `ps` reports the current RSS in KiB. (resource.getrusage gives the
    # peak, not the current size, and in bytes on macOS but KiB on Linux.)
    result = subprocess.run(
        ["ps", "-o", "rss=", "-p", str(os.getpid())], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip()) * 1024


def advise_random_access(data: np.memmap) -> bool:
    """Tell the OS `data` is read at random places (no read-ahead); True if the advice was given."""
    # On a page fault the kernel reads ahead (often 128 KiB on Linux) for a sequential scan; a
    # random window of a few hundred bytes then drags in hundreds of times the bytes it needs.
    # np.memmap keeps its mmap object in `_mmap` (not public API, hence the checks).
    mapping = getattr(data, "_mmap", None)
    if mapping is None or not hasattr(mmap, "MADV_RANDOM"):
        return False
    mapping.madvise(mmap.MADV_RANDOM)
    return True


def create_sparse_file(path: str | Path, num_bytes: int) -> None:
    """A file of `num_bytes` zero bytes that takes (almost) no disk: a hole, not written data."""
    _check_positive_int("num_bytes", num_bytes)
    with open(path, "xb") as f:  # "x": never overwrite an existing file
        f.truncate(num_bytes)


def allocated_bytes(path: str | Path) -> int:
    """Bytes of disk a file really occupies (st_blocks counts 512-byte blocks on POSIX)."""
    stat = os.stat(path)
    return stat.st_blocks * 512 if hasattr(stat, "st_blocks") else stat.st_size


@dataclass(frozen=True)
class SparseSampling:
    """What drawing batches from a big sparse token file cost: bytes on disk and of RAM."""

    file_bytes: int  # the file's size
    num_tokens: int
    disk_bytes: int  # what the file occupies on disk (a hole: almost nothing)
    bytes_needed: int  # the bytes of tokens the batches read
    rss_growth: dict[bool, int]  # RSS growth in bytes, without (False) and with (True) the advice
    advice_taken: bool  # whether madvise(MADV_RANDOM) was available


def sample_sparse_file(
    directory: str | Path, file_bytes: int, num_batches: int, batch_size: int, context_length: int
) -> SparseSampling:
    """Memmap a sparse token file of `file_bytes` in `directory`, draw batches, measure the RSS.

    Done twice, without and with advise_random_access, each time on a new file: pages already
    read stay in memory, and would hide what the second run brings in.
    """
    for name, value in (("num_batches", num_batches), ("batch_size", batch_size)):
        _check_positive_int(name, value)
    growth = {}
    for advised in (False, True):
        path = Path(directory) / f"big_tokens_{advised}.bin"
        create_sparse_file(path, file_bytes)
        disk_bytes = allocated_bytes(path)
        rss_before = resident_memory_bytes()
        big = np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
        advice_taken = advise_random_access(big) if advised else False
        generator = make_generator(0)
        for _ in range(num_batches):
            get_batch(big, batch_size, context_length, "cpu", generator)
        growth[advised] = resident_memory_bytes() - rss_before
        num_tokens = len(big)
        del big  # unmap before the file can be deleted
    needed = num_batches * batch_size * (context_length + 1) * TOKEN_DTYPE.itemsize
    return SparseSampling(file_bytes, num_tokens, disk_bytes, needed, growth, advice_taken)


def empirical_entropies(tokens: np.ndarray) -> tuple[float, float]:
    """Cross-entropy floors of the data in nats/token: unigram H(X) and bigram H(next | current)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) < 2:
        raise ValueError("need a 1-D array of at least 2 tokens")
    unigram = np.bincount(tokens, minlength=VOCAB_SIZE) / len(tokens)
    h_unigram = -float(np.sum(unigram[unigram > 0] * np.log(unigram[unigram > 0])))
    pairs = np.bincount(tokens[:-1] * VOCAB_SIZE + tokens[1:], minlength=VOCAB_SIZE**2)
    joint = pairs.reshape(VOCAB_SIZE, VOCAB_SIZE) / (len(tokens) - 1)
    current = joint.sum(axis=1, keepdims=True)
    nonzero = joint > 0
    conditional = joint[nonzero] / np.broadcast_to(current, joint.shape)[nonzero]
    h_bigram = -float(np.sum(joint[nonzero] * np.log(conditional)))
    return h_unigram, h_bigram


# ----------------------------------------------------------------------------------------------
# The model and the loop


def _check_token_ids(name: str, tokens: Any, vocab_size: int) -> None:
    """Raise unless `tokens` is an integer tensor of token ids in [0, vocab_size)."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of token ids, got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.numel() == 0:
        return
    # One reduction and one wait for the device: on a GPU a bad id would otherwise stop the
    # process with a device-side assert (and an unusable CUDA context), not a readable error.
    low, high = torch.stack(torch.aminmax(tokens)).tolist()
    bad = high if high >= vocab_size else low if low < 0 else None
    if bad is not None:
        raise ValueError(
            f"{name} holds token id {bad}, but the vocabulary has {vocab_size} ids "
            f"(0 to {vocab_size - 1}): check that the tokens were made for vocab_size "
            f"{vocab_size}"
        )


class ByteModel(nn.Module):
    """Next-byte model: an embedding, the Cruncher's D x D Linear layers, a D -> vocab head.

    The lecture's Cruncher ends in one number per example; guessing the next byte needs one
    score per possible byte, so the head is D -> 256. Each position sees only its own byte
    (a bigram model): enough for the loss to fall well below that of a uniform guess.
    `generator` draws the initial weights (the global generator if None).
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        vocab_size: int = VOCAB_SIZE,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_positive_int("dim", dim)
        _check_positive_int("vocab_size", vocab_size)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {num_layers!r}")
        self.embedding = nn.Embedding(vocab_size, dim)
        with torch.no_grad():  # redraw N(0, 1) from `generator`, so init has its own stream
            self.embedding.weight.normal_(generator=generator)
        self.layers = nn.ModuleList(
            [Linear(dim, dim, generator=generator) for _ in range(num_layers)]
        )
        self.head = Linear(dim, vocab_size, generator=generator)

    def forward(
        self, tokens: Int[torch.Tensor, "batch seq"]
    ) -> Float[torch.Tensor, "batch seq vocab"]:
        _check_token_ids("tokens", tokens, self.embedding.num_embeddings)
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def next_token_loss(
    logits: Float[torch.Tensor, "batch seq vocab"], targets: Int[torch.Tensor, "batch seq"]
) -> Float[torch.Tensor, ""]:
    """Mean cross-entropy of the next-token guesses, in nats per token."""
    _check_token_ids("targets", targets, logits.shape[-1])
    if targets.shape != logits.shape[:-1]:  # one target per position that has a guess
        raise ValueError(
            f"targets must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}, "
            f"got {tuple(targets.shape)}"
        )
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Int[torch.Tensor, "batch seq"],
    targets: Int[torch.Tensor, "batch seq"],
) -> float:
    """One step: forward, backward, update, clear the gradients. Returns the loss (nats/token)."""
    loss = next_token_loss(model(inputs), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # frees the gradients until the next backward
    return loss.item()


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: np.ndarray,
    generator: torch.Generator,
    *,
    steps: int,
    batch_size: int,
    context_length: int,
) -> list[float]:
    """Run `steps` training steps on random batches of `data`; the losses, one per step."""
    _check_positive_int("steps", steps)
    device = next(model.parameters()).device
    losses = []
    for _ in range(steps):
        inputs, targets = get_batch(data, batch_size, context_length, device, generator)
        losses.append(training_step(model, optimizer, inputs, targets))
    return losses


def first_differing_step(a: Sequence[float], b: Sequence[float]) -> int | None:
    """The first step (counting from 1) whose losses differ; None if every loss is equal."""
    if len(a) != len(b):
        raise ValueError(f"the two runs have {len(a)} and {len(b)} losses: compare runs of "
                         f"the same length")
    return next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def moving_average(values: Sequence[float], window: int = 10) -> np.ndarray:
    """Means of `window` consecutive values (len(values) - window + 1 of them)."""
    _check_positive_int("window", window)
    if len(values) < window:
        raise ValueError(f"need at least window={window} values, got {len(values)}")
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_learning_rates(
    runs: Mapping[float, Sequence[float]], floors: Mapping[str, float], window: int = 10
) -> Figure:
    """Figure: each learning rate's loss (nats/token, `window`-step means), on a log axis and
    zoomed in beside the reference `floors` (name -> loss)."""
    import matplotlib.pyplot as plt

    if not runs or not floors:
        raise ValueError("need at least one run (lr -> losses) and one floor (name -> loss)")
    fig, (ax_all, ax_zoom) = plt.subplots(1, 2, figsize=(13, 4.8))
    steps = max(len(losses) for losses in runs.values())
    for lr, losses in runs.items():
        smooth = moving_average(losses, window)
        for ax in (ax_all, ax_zoom):
            ax.plot(np.arange(len(smooth)) + window, smooth, label=f"lr = {lr}")
    lowest = min(floors.values())
    for name, level in floors.items():
        above = level > lowest  # the lowest label goes below its line, clear of the curves
        ax_zoom.axhline(level, color="gray", linestyle="--", linewidth=1)
        ax_zoom.text(steps, level + (0.04 if above else -0.04), f"{name} ", ha="right",
                     va="bottom" if above else "top", fontsize=10, color="gray")
    # Left: a log axis, as a rate that blows up climbs into the thousands. Right: zoomed in.
    ax_all.set(yscale="log", title="all runs (log scale)")
    ax_zoom.set(ylim=(lowest - 0.3, max(floors.values()) + 1.0), title="zoomed in")
    for ax in (ax_all, ax_zoom):
        ax.set(xlabel="training step", ylabel=f"loss (nats/token, {window}-step mean)")
    ax_all.legend(loc="upper right")
    fig.suptitle(f"AdaGrad on byte-level data: {len(runs)} learning rates")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: says which file, what is wrong, and what to do."""

    def __init__(self, path: str | Path, problem: str, advice: str) -> None:
        self.path = Path(path)  # the full path, for code; the message names only the file
        super().__init__(f"checkpoint '{self.path.name}' {problem}. {advice}.")


def content_sha256(obj: Any) -> str:
    """SHA-256 over the values in nested dicts/lists/tuples of tensors and Python scalars."""
    digest = hashlib.sha256()

    def visit(x: Any, where: str) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().contiguous()
            digest.update(f"tensor{x.dtype}{tuple(x.shape)}".encode())
            digest.update(x.view(-1).view(torch.uint8).numpy())  # hashed in place, no copy
        elif isinstance(x, dict):
            digest.update(b"dict")
            # Sort by a printable key so int keys (optimizer state) and str keys both work.
            for key in sorted(x, key=lambda k: (type(k).__name__, repr(k))):
                digest.update(repr(key).encode())
                visit(x[key], f"{where}[{key!r}]")
        elif isinstance(x, (list, tuple)):
            digest.update(f"{type(x).__name__}{len(x)}".encode())
            for index, item in enumerate(x):
                visit(item, f"{where}[{index}]")
        # Exact types: subclasses such as np.float64 or an IntEnum hash like their base class,
        # but torch.load(weights_only=True) refuses them, so a checkpoint holding one is unloadable.
        elif x is None or type(x) in (bool, int, float, str):
            digest.update(repr(x).encode())
        else:
            raise TypeError(
                f"cannot checksum a {type(x).__name__} (at {where or 'the top level'}): use "
                f"tensors and plain Python scalars (.item() turns a NumPy scalar into one)"
            )

    visit(obj, "")
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX; Windows has no directory fsync)."""
    # A rename changes the directory's entries, not the file's bytes: until the directory itself
    # is fsynced, a power cut can forget the rename and bring back the old name's file.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _qualified_name(cls: type) -> str:
    """A class's full name, e.g. 'torch.optim.adamw.AdamW'."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _state_layout(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Shape and dtype of every entry of model.state_dict() (parameters and buffers), by name."""
    return {
        name: {
            "shape": list(value.shape) if isinstance(value, torch.Tensor) else None,
            "dtype": str(value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__,
        }
        for name, value in model.state_dict().items()
    }


def _check_argument_types(
    model: Any, optimizer: Any, data_generator: Any, *, optimizer_may_be_none: bool
) -> None:
    """Raise a TypeError naming the argument that is not a Module, Optimizer or Generator."""
    if not isinstance(model, nn.Module):
        hint = ": pass the model itself, not its state_dict()" if isinstance(model, dict) else ""
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}{hint}")
    if not (isinstance(optimizer, torch.optim.Optimizer) or
            (optimizer is None and optimizer_may_be_none)):
        allowed = "a torch.optim.Optimizer" + (" or None" if optimizer_may_be_none else "")
        raise TypeError(f"optimizer must be {allowed}, got {type(optimizer).__name__}")
    if data_generator is not None and not isinstance(data_generator, torch.Generator):
        raise TypeError(
            f"data_generator must be a torch.Generator or None, got {type(data_generator).__name__}"
        )


def _check_save_arguments(
    path: Path, model: Any, optimizer: Any, step: Any, data_generator: Any
) -> None:
    """Raise a clear error for anything save_checkpoint cannot save, before touching any file."""
    _check_argument_types(model, optimizer, data_generator, optimizer_may_be_none=False)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0 (steps completed), got {step!r}")
    if path.is_dir():
        raise IsADirectoryError(
            f"checkpoint '{path.name}' is a directory, not a checkpoint file: save to a file "
            f"path, e.g. {path.name}/checkpoint.pt"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the directory for {path.name} does not exist: create it first")


def _remove_stale_temp_files(path: Path) -> None:
    """Delete the temp files of earlier saves of `path` that were killed (.NAME.XXXXXXXX.tmp)."""
    # Only this checkpoint's: mkstemp's random part has no dot, so the temp files of a
    # checkpoint named "NAME.x" (.NAME.x.XXXXXXXX.tmp) never match.
    pattern = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]+" + re.escape(".tmp"))
    for entry in path.parent.iterdir():
        if pattern.fullmatch(entry.name):
            entry.unlink(missing_ok=True)


def _default_file_mode() -> int:
    """The permission bits open() gives a new file: 0o666 less the bits the umask clears."""
    # No call only reads the umask: set one and put the old one back at once. The value set in
    # between is the strictest one, so a file another thread makes meanwhile is private, not
    # world-writable (as os.umask(0) would make it).
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def _create_temp_file(path: Path) -> tuple[int, Path]:
    """A new, empty temp file beside `path` (open fd and path), with the mode open() would give."""
    try:
        # Two processes must never save the same checkpoint at once (one rename would undo the
        # other), so a temp file of this name is a killed save's leftover, safe to delete.
        _remove_stale_temp_files(path)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        why = "its file system is read-only" if e.errno == errno.EROFS else "permission denied"
        raise PermissionError(
            f"cannot save checkpoint '{path.name}' into directory '{path.parent}': {why}. "
            f"Choose a writable directory, or fix its permissions"
        ) from e
    try:
        os.chmod(temp_name, _default_file_mode())  # mkstemp makes it 0o600, private to its owner
    except BaseException:
        os.close(fd)
        os.unlink(temp_name)
        raise
    return fd, Path(temp_name)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    data_generator: torch.Generator | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save model, optimizer, step and all random states atomically: old file or new, never half."""
    path = Path(path)
    _check_save_arguments(path, model, optimizer, step, data_generator)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": get_rng_states(data_generator),
        "extra": {} if extra is None else extra,
        # What the state belongs to, so that loading can name a mismatch before changing anything.
        "optimizer_class": _qualified_name(type(optimizer)),
        "model_layout": _state_layout(model),
    }
    # torch.load does not check tensor bytes (a flipped bit loads silently), so record a digest.
    checkpoint["sha256"] = content_sha256(checkpoint)
    # Write a temporary file in the same directory (a rename is atomic only within one file
    # system), force it to disk, then rename it over the old checkpoint in one step.
    fd, temp_path = _create_temp_file(path)  # and delete those that killed saves left behind
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)  # the old checkpoint at `path` is untouched
        raise
    # The rename lives in the directory: without this fsync a power cut can forget it.
    _fsync_directory(path.parent)


_CHECKPOINT_KEYS = {
    "format", "step", "model", "optimizer", "rng", "extra", "optimizer_class", "model_layout",
    "sha256",
}
_ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every zip archive, and so of every torch.save file
_RESTART = "Resume from an earlier checkpoint, or start the run again from step 0"
_DAMAGED = "is truncated or corrupted: torch.load cannot read it as an archive"


def _check_is_torch_archive(path: Path) -> None:
    """Raise a CheckpointError saying what `path` is, unless it is a zip archive from torch.save."""
    if not path.exists():
        raise CheckpointError(path, "does not exist", "Check the path, or start from step 0")
    if path.is_dir():
        raise CheckpointError(
            path, "is a directory, not a checkpoint file", "Pass the path of a file inside it"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except PermissionError as e:
        raise CheckpointError(
            path,
            "cannot be read: permission denied",
            "Fix its permissions (chmod u+r), or run as a user allowed to read it",
        ) from e
    if not head:
        raise CheckpointError(path, "is empty (0 bytes): its save never finished", _RESTART)
    if head[:1] == b"\x80":  # pickle's PROTO opcode: pickle.dump, or torch.save's pre-1.6 format
        raise CheckpointError(
            path,
            "is a plain pickle, not a zip archive: save_checkpoint did not write it",
            "Check the path. To read this file, use torch.load (with weights_only=True unless "
            "you made it yourself)",
        )
    if not _ZIP_MAGIC.startswith(head):  # (a file cut within these 4 bytes is dealt with below)
        raise CheckpointError(
            path,
            "is not a PyTorch checkpoint (not a zip archive, which torch.save writes)",
            "Check the path: it points to some other kind of file",
        )
    # A zip archive lists its contents at its very end, so a file cut short has no list.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(path, _DAMAGED, _RESTART)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            # Reading it checks its CRC-32, so a damaged pickle is reported as damaged, not as
            # objects weights_only refuses. (The SHA-256 checks the tensors' bytes later.)
            if pickles:
                archive.read(pickles[0])
    except Exception as e:  # zipfile.BadZipFile (a wrong CRC-32), EOFError, zlib.error, ...
        raise CheckpointError(path, _DAMAGED, _RESTART) from e
    if not pickles:  # torch.save always writes its objects' pickle as ARCHIVE/data.pkl
        raise CheckpointError(
            path,
            "is a zip archive, but not one torch.save writes (it holds no data.pkl)",
            "Check the path: it points to some other kind of file",
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and verify a checkpoint written by save_checkpoint (weights_only, on the CPU)."""
    path = Path(path)
    _check_is_torch_archive(path)  # says what the file is instead, if it is not one
    try:
        # weights_only=True: unpickle tensors and plain containers only, never arbitrary code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The messages below stay the same across torch versions; torch's own is chained.
        raise CheckpointError(
            path,
            "holds objects that torch.load(weights_only=True) refuses to unpickle (save_checkpoint "
            "writes only tensors and plain values, so it did not write this file)",
            "Load it with torch.load(weights_only=False) only if you made it yourself, and "
            "restore its parts by hand",
        ) from e
    except Exception as e:  # a damaged archive: RuntimeError, EOFError, ...
        raise CheckpointError(path, _DAMAGED, _RESTART) from e
    by_hand = "Load it with torch.load and restore its parts by hand"
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            path,
            f"is not a checkpoint written by save_checkpoint (it holds a "
            f"{type(checkpoint).__name__}, not a dict)",
            by_hand,
        )
    # The format first: a file of another format may well lack keys that this one has.
    if checkpoint.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            f"has format {checkpoint['format']}, this code reads format {CHECKPOINT_FORMAT}",
            "Load it with the version of lecture_utils that wrote it",
        )
    missing = sorted(_CHECKPOINT_KEYS - checkpoint.keys())
    if missing:
        raise CheckpointError(
            path,
            f"is not a checkpoint written by save_checkpoint (missing {', '.join(missing)})",
            by_hand,
        )
    recorded = checkpoint.pop("sha256")
    if content_sha256(checkpoint) != recorded:
        raise CheckpointError(
            path,
            "loads, but its contents do not match the SHA-256 recorded at save time "
            "(some bytes changed on disk)",
            _RESTART,
        )
    return checkpoint


def _a_few(names: list[str], limit: int = 3) -> str:
    """'a', 'b', 'c' and 4 more: a list short enough for an error message."""
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _model_mismatch(saved: dict[str, Any], model: nn.Module) -> str | None:
    """How model.state_dict() differs from the layout `saved` records (names, shapes); or None."""
    here = _state_layout(model)
    lacks = [name for name in saved if name not in here]
    extra = [name for name in here if name not in saved]
    if lacks or extra:
        differences = []
        if lacks:
            differences.append(f"the file holds {_a_few(lacks)}, which this model lacks")
        if extra:
            differences.append(f"this model has {_a_few(extra)}, which the file lacks")
        return "; ".join(differences)
    parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    for name, entry in here.items():
        # Only shapes must agree: load_state_dict converts dtypes (a float32 file into a
        # bfloat16 model, say), which can be meant.
        if entry["shape"] != saved[name]["shape"]:
            kind = "parameter" if name in parameters else "buffer"
            return (
                f"{kind} '{name}' has shape {tuple(entry['shape'])} here but "
                f"{tuple(saved[name]['shape'])} in the file"
            )
    return None


def _optimizer_mismatch(checkpoint: dict[str, Any], optimizer: torch.optim.Optimizer) -> str | None:
    """How `optimizer` differs from the checkpoint's (class, parameter groups); or None."""
    saved_class, here_class = checkpoint["optimizer_class"], _qualified_name(type(optimizer))
    if saved_class != here_class:
        saved_name, here_name = saved_class.rsplit(".", 1)[-1], here_class.rsplit(".", 1)[-1]
        if saved_name == here_name:  # two classes of one name: the full names tell them apart
            saved_name, here_name = saved_class, here_class
        return f"was saved with optimizer {saved_name}, not {here_name}"
    saved_groups = checkpoint["optimizer"]["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        return (
            f"holds the state of an optimizer with {len(saved_groups)} parameter group(s), but "
            f"this optimizer has {len(optimizer.param_groups)}"
        )
    for index, (saved, here) in enumerate(zip(saved_groups, optimizer.param_groups)):
        if len(saved["params"]) != len(here["params"]):
            return (
                f"holds {len(saved['params'])} parameters in optimizer parameter group {index}, "
                f"but this optimizer has {len(here['params'])} there"
            )
    return None


def _check_checkpoint_fits(
    path: Path,
    checkpoint: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    data_generator: torch.Generator | None,
) -> None:
    """Raise a CheckpointError naming the first part of `checkpoint` that cannot be restored."""
    mismatch = _model_mismatch(checkpoint["model_layout"], model)
    if mismatch is not None:
        raise CheckpointError(
            path,
            f"does not fit this model: {mismatch}",
            "Build the model with the settings used when it was saved",
        )
    mismatch = None if optimizer is None else _optimizer_mismatch(checkpoint, optimizer)
    if mismatch is not None:
        raise CheckpointError(
            path,
            mismatch,
            f"Build a {checkpoint['optimizer_class']} over the same parameters as the run that "
            f"saved it, or pass optimizer=None to restore the rest",
        )
    if data_generator is not None and checkpoint["rng"]["data_generator"] is None:
        raise CheckpointError(
            path,
            "holds no data generator state",
            "Pass data_generator=... to save_checkpoint, or resume without one",
        )


def _snapshot(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, generator: torch.Generator | None
) -> dict[str, Any]:
    """Copies of all that load_checkpoint changes, to put back if restoring fails midway."""
    # Deep copies, since load_state_dict writes into the model's tensors in place. For a
    # moment they double the memory the model and optimizer state take.
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": None if optimizer is None else copy.deepcopy(optimizer.state_dict()),
        "rng": get_rng_states(generator),
    }


def _restore_snapshot(
    snapshot: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator | None,
) -> None:
    """Put back what _snapshot copied."""
    model.load_state_dict(snapshot["model"])
    if optimizer is not None:
        optimizer.load_state_dict(snapshot["optimizer"])
    set_rng_states(snapshot["rng"], generator)


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    data_generator: torch.Generator | None = None,
) -> int:
    """Restore a checkpoint into model (and optimizer, RNGs, data generator); the step it holds.

    All or nothing: if it raises, the model, optimizer and every random state are unchanged.
    """
    _check_argument_types(model, optimizer, data_generator, optimizer_may_be_none=True)
    path = Path(path)
    checkpoint = read_checkpoint(path)
    _check_checkpoint_fits(path, checkpoint, model, optimizer, data_generator)
    # Everything was checked, yet load_state_dict can still fail halfway (a custom module's
    # hook, say): keep copies of the current state to put back.
    before = _snapshot(model, optimizer, data_generator)
    try:
        model.load_state_dict(checkpoint["model"])
        if optimizer is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
        # The global generators (torch, CUDA, MPS, NumPy, Python), and the data order's.
        set_rng_states(checkpoint["rng"], data_generator)
    except BaseException as e:
        _restore_snapshot(before, model, optimizer, data_generator)
        if not isinstance(e, Exception):
            raise  # KeyboardInterrupt and the like: state restored, passed on unchanged
        first_line = (str(e).splitlines() or [""])[0]
        raise CheckpointError(
            path,
            f"could not be restored ({type(e).__name__}: {first_line}); the model, optimizer "
            f"and random states were left as they were",
            "Build the model and optimizer with the settings used when it was saved",
        ) from e
    return checkpoint["step"]


def plot_resumes(
    uninterrupted: Sequence[float], resumes: Mapping[str, Sequence[float]], stop_at: int
) -> Figure:
    """Figure: the uninterrupted run's losses and, from `stop_at` on, each resumed run's."""
    import matplotlib.pyplot as plt

    if not 0 < stop_at < len(uninterrupted):
        raise ValueError(f"stop_at must be a step inside the run (1 to {len(uninterrupted) - 1}), "
                         f"got {stop_at}")
    fig, ax = plt.subplots()
    steps = np.arange(1, len(uninterrupted) + 1)
    ax.plot(steps, uninterrupted, color="black", linewidth=3, label="uninterrupted")
    for name, losses in resumes.items():
        ax.plot(steps[stop_at:], losses[stop_at:], label=f"resumed, {name}",
                linestyle="--" if name == "everything" else "-")
    top = min(10.0, max(max(losses[stop_at:]) for losses in resumes.values()) + 1)
    ax.axvline(stop_at + 0.5, color="gray", linestyle=":", linewidth=1)
    ax.text(stop_at + 1, top - 0.2, "checkpoint", va="top", fontsize=10)
    ax.set(xlim=(stop_at - 15, len(uninterrupted)), ylim=(2, top), xlabel="training step",
           ylabel="loss (nats/token)", title="Resuming from a checkpoint: what each part is for")
    ax.legend(loc="upper right")
    return fig


def flip_exponent_bit(data: bytes, tensor: torch.Tensor) -> bytes:
    """`data` (a checkpoint file) with one bit of `tensor`'s first float32 flipped: its value
    times or divided by 4."""
    if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32:
        raise TypeError("tensor must be a float32 tensor stored in the checkpoint")
    offset = data.find(tensor.detach().cpu().contiguous().numpy().tobytes()[:64])
    if offset < 0:
        raise ValueError("the tensor's bytes are not in data: pass a tensor the file holds")
    flipped = bytearray(data)
    # Byte 3 of a little-endian float32 holds the sign and the top 7 exponent bits; its lowest
    # bit is the exponent's 2s bit, so flipping it multiplies or divides the weight by 2**2 = 4.
    flipped[offset + 3] ^= 0x01
    return bytes(flipped)


# ----------------------------------------------------------------------------------------------
# Check yourself

EXERCISES = Exercises("07")

# The items exercise 3 asks about, spelled as the answer must spell them.
CHECKPOINT_ITEMS = (
    "model weights",
    "gradients",
    "optimizer state",
    "step",
    "data generator state",
    "global torch RNG state",
    "loss history",
)
_NEEDED_FOR_RESUME = {"model weights", "optimizer state", "step", "data generator state"}
_WHY_NEEDED = {
    "model weights": "without the weights the run starts over from random ones.",
    "optimizer state": "AdaGrad divides each step by sqrt(sum_sq_grad): a fresh, empty sum "
    "makes the first resumed steps as large as the very first step of the run.",
    "step": "without the step count you do not know how many steps are left (nor where a "
    "learning-rate schedule stands).",
    "data generator state": "a fresh data generator draws different windows, so every batch "
    "after the resume differs.",
}
_WHY_NOT_NEEDED = {
    "gradients": "zero_grad clears the gradients after every step: none survive to the next.",
    "global torch RNG state": "this loop draws nothing from the global generator after "
    "initialization (no dropout; batches use their own generator). save_checkpoint stores it "
    "anyway, for models that do.",
    "loss history": "handy for plots, but no future loss depends on past losses.",
}

# Exercises 1 and 2: a file of N tokens, windows of T, batches of B from a uint16 file.
_N, _T = 1000, 8
_B, _T2, _UINT16_BYTES = 32, 1024, 2


# Each hint is keyed by the answer its mistake gives (the tests make each mistake to check).
_WINDOW_HINTS = {
    _N - _T + 1: "a window needs T inputs plus 1 more token for the last target, so the last "
    "start is N - T - 1, not N - T.",
    _N: "a window cannot start in the last T tokens: it would run off the end of the file.",
    _N // _T: "that counts non-overlapping chunks; a random window may start at any token.",
    _N // (_T + 1): "that counts non-overlapping windows; a random window may start at any token.",
    _N - _T - 1: "N - T - 1 is the last start; starts run from 0 to N - T - 1 inclusive, so "
    "there are N - T of them.",
}


@EXERCISES.checker(1, "random windows in a file of N tokens",
                   wants="an int (a count of windows), exactly")
def _(answer: Any) -> Feedback:
    return check_count(answer, _N - _T, hints=_WINDOW_HINTS, unit="windows")


_BATCH_BYTES_HINTS = {
    _B * _T2 * _UINT16_BYTES: "each window is T inputs plus 1 extra token for the last target.",
    _B * (_T2 + 1) * 8: "that is the size after conversion to int64; the file holds uint16 "
    "tokens, 2 bytes each.",
    _B * (_T2 + 1) * 4: "that is 4 bytes a token (int32, as the lecture's memmap reads them); "
    "this file holds uint16 tokens, 2 bytes each.",
    2 * _B * _T2 * _UINT16_BYTES: "inputs and targets overlap: both come from one window of "
    "T + 1 tokens, read once.",
    _B * (_T2 + 1): "tokens are uint16: 2 bytes each, not 1.",
    _B * (_T2 + 1) * 16: "that is bits: a uint16 token is 16 bits, 2 bytes.",
    _B * _T2 * 8: "that is the int64 inputs tensor get_batch returns; the question is about the "
    "uint16 file, T + 1 tokens a window.",
}


@EXERCISES.checker(2, "bytes a batch reads from the memmap", wants="an int (bytes), exactly")
def _(answer: Any) -> Feedback:
    return check_count(answer, _B * (_T2 + 1) * _UINT16_BYTES, hints=_BATCH_BYTES_HINTS,
                       unit="bytes")


@EXERCISES.checker(3, "what a bit-identical resume needs",
                   wants="a set of strings from CHECKPOINT_ITEMS, exactly the needed ones")
def _(answer: Any) -> Feedback:
    if isinstance(answer, str) or not isinstance(answer, (set, frozenset, list, tuple)):
        return wrong("answer with a set of strings taken from CHECKPOINT_ITEMS, e.g. "
                     "{'step', 'gradients'}.")
    unknown = [item for item in answer if item not in CHECKPOINT_ITEMS]
    if unknown:
        choices = ", ".join(CHECKPOINT_ITEMS)
        return wrong(f"{unknown[0]!r} is not one of CHECKPOINT_ITEMS: {choices}.")
    chosen = set(answer)
    for item in CHECKPOINT_ITEMS:
        if item in _NEEDED_FOR_RESUME and item not in chosen:
            return wrong(f"you left out {item!r}: {_WHY_NEEDED[item]}")
        if item not in _NEEDED_FOR_RESUME and item in chosen:
            return wrong(f"{item!r} is not needed: {_WHY_NOT_NEEDED[item]}")
    return CORRECT


class SimulatedCrash(Exception):
    """Raised by a stand-in torch.save to play a crash halfway through writing a file."""


_real_torch_save = torch.save  # kept before anything patches torch.save


def crash_halfway_through_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    """A stand-in for torch.save that writes the first half of the file, then 'crashes'."""
    buffer = io.BytesIO()
    _real_torch_save(obj, buffer)
    half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            out.write(half)
    else:
        f.write(half)
    raise SimulatedCrash("the process died halfway through writing the checkpoint")


def _spy(fn: Callable, calls: list) -> Callable:
    """Wrap `fn` so each call's positional arguments are recorded in `calls`."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return fn(*args, **kwargs)

    return wrapper


def _first_save(save_atomic: Callable, obj: Any, path: Path) -> tuple[Feedback | None, list, list]:
    """Run save_atomic(obj, path) once, no crash: a verdict if that already settles it, and the
    os.replace/os.rename and os.fsync calls it made."""
    replaces: list = []
    fsyncs: list = []
    try:
        with (
            unittest.mock.patch.object(os, "replace", _spy(os.replace, replaces)),
            unittest.mock.patch.object(os, "rename", _spy(os.rename, replaces)),
            unittest.mock.patch.object(os, "fsync", _spy(os.fsync, fsyncs)),
        ):
            result = save_atomic(obj, path)
    except NotImplementedError:
        return UNANSWERED, replaces, fsyncs
    except Exception as e:  # noqa: BLE001 (the student's function: say what it raised)
        return wrong(f"save_atomic(obj, path) raised {type(e).__name__} ({e}) on an ordinary "
                     "save, with nothing crashing."), replaces, fsyncs
    if not any(path.parent.iterdir()):
        # The stub (return None, nothing written) is not answered yet; a function that writes
        # nothing and returns something is wrong.
        return (UNANSWERED if result is None else wrong("save_atomic(obj, path) wrote no file: "
                "torch.save the object to a temporary file, then rename it to path.")), [], []
    if not path.exists():
        return wrong("after save_atomic(obj, path) there is no file at path: rename the "
                     "temporary file to path."), replaces, fsyncs
    try:
        loaded = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 (whatever the student wrote there)
        return wrong("torch.load(path) cannot read the file save_atomic wrote: write it with "
                     "torch.save(obj, f)."), replaces, fsyncs
    if not isinstance(loaded, dict) or loaded.get("step") != 1:
        return wrong("torch.load(path) did not give back the object you saved."), replaces, fsyncs
    return None, replaces, fsyncs


def _crashed_save(save_atomic: Callable, obj: Any, path: Path) -> Feedback | None:
    """Run save_atomic(obj, path) over an existing checkpoint with torch.save crashing halfway;
    a verdict if the old checkpoint did not survive intact and alone."""
    with unittest.mock.patch.object(torch, "save", crash_halfway_through_save):
        try:
            save_atomic(obj, path)
        except SimulatedCrash:
            pass
        else:
            return wrong("the crash inside torch.save was swallowed: clean up, then re-raise.")
    if not path.exists():
        return wrong("after the crash there is no file at path: the old checkpoint was removed "
                     "before the new one was complete. Leave it in place until the rename.")
    try:
        survivor = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 (RuntimeError, EOFError, UnpicklingError, ...)
        return wrong("a crash mid-save destroyed the previous checkpoint: write to a temporary "
                     "file in the same directory, then os.replace(temp, path).")
    if not isinstance(survivor, dict) or survivor.get("step") != 1:
        return wrong("after the crash the file holds something other than the old checkpoint.")
    leftovers = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    if leftovers:
        return wrong(f"the failed save left {leftovers[0]!r} behind: delete the temporary file "
                     "when saving fails (try/except, then raise).")
    return None


@EXERCISES.checker(4, "make a checkpoint save atomic",
                   wants="a function save_atomic(obj, path) that saves atomically and returns "
                   "nothing")
def _(save_atomic: Any) -> Feedback:
    if not callable(save_atomic):
        return wrong("pass your function save_atomic itself (no parentheses).")
    old, new = {"step": 1, "w": torch.arange(4.0)}, {"step": 2, "w": torch.zeros(4)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        verdict, replaces, fsyncs = _first_save(save_atomic, old, path)
        if verdict is None:
            verdict = _crashed_save(save_atomic, new, path)
    if verdict is not None:
        return verdict
    if not replaces:
        return wrong("finish with os.replace(temp, path): a rename is atomic, a copy is not.")
    source, target = (Path(p) for p in replaces[-1][:2])
    if source.parent.resolve() != target.parent.resolve():
        return wrong(
            "make the temporary file in the checkpoint's own directory: a rename across file "
            "systems is a copy, and not atomic."
        )
    if not fsyncs:
        return wrong(
            "call f.flush() and os.fsync(f.fileno()) before the rename: otherwise the rename can "
            "reach the disk before the data does, and a power cut leaves an empty file."
        )
    return CORRECT
