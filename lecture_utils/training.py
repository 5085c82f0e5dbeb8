"""Notebook 07: the training loop, and what makes it repeatable and safe to stop.

Read top to bottom: randomness (one seed per source), data (a checksummed token file read
lazily with np.memmap, random windows as batches), a tiny next-byte model and the loop that
trains it, then checkpoints (atomic writes, every random state, clear errors on bad files).

Units: bytes, tokens, nats (natural-log cross-entropy per token).
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import pickle
import random
import subprocess
import tempfile
import unittest.mock
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from lecture_utils.exercises import CORRECT, UNANSWERED, Exercises, Feedback, wrong
from lecture_utils.models import Linear

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TOKENS_PATH = DATA_DIR / "tokens.bin"  # written by data/make_tokens.py
TOKEN_DTYPE = np.dtype("<u2")  # little-endian uint16, as the script writes it
VOCAB_SIZE = 256  # byte-level tokens
CHECKPOINT_FORMAT = 1


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
    return torch.Generator(device="cpu").manual_seed(seed)


def get_rng_states(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state (torch CPU/CUDA, NumPy, Python, `generator`) as weights_only types."""
    # torch.load(weights_only=True) accepts tensors, dicts, lists, ints, floats, str and None.
    # NumPy's state holds an ndarray and Python's a tuple of 625 ints: turn both into tensors.
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
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
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D array of tokens, got shape {data.shape}")
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
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def next_token_loss(
    logits: Float[torch.Tensor, "batch seq vocab"], targets: Int[torch.Tensor, "batch seq"]
) -> Float[torch.Tensor, ""]:
    """Mean cross-entropy of the next-token guesses, in nats per token."""
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

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().contiguous()
            digest.update(f"tensor{x.dtype}{tuple(x.shape)}".encode())
            digest.update(x.view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            digest.update(b"dict")
            # Sort by a printable key so int keys (optimizer state) and str keys both work.
            for key in sorted(x, key=lambda k: (type(k).__name__, repr(k))):
                digest.update(repr(key).encode())
                visit(x[key])
        elif isinstance(x, (list, tuple)):
            digest.update(f"{type(x).__name__}{len(x)}".encode())
            for item in x:
                visit(item)
        elif x is None or isinstance(x, (bool, int, float, str)):
            digest.update(repr(x).encode())
        else:
            raise TypeError(f"cannot checksum a {type(x).__name__}: use tensors and scalars")

    visit(obj)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX; Windows has no directory fsync)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0 (steps completed), got {step!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the directory for {path.name} does not exist: create it first")
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": get_rng_states(data_generator),
        "extra": {} if extra is None else extra,
    }
    # torch.load does not check tensor bytes (a flipped bit loads silently), so record a digest.
    checkpoint["sha256"] = content_sha256(checkpoint)
    # Write a temporary file in the same directory (a rename is atomic only within one file
    # system), force it to disk, then rename it over the old checkpoint in one step.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)  # the old checkpoint at `path` is untouched
        raise
    _fsync_directory(path.parent)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and verify a checkpoint written by save_checkpoint (weights_only, on the CPU)."""
    path = Path(path)
    restart = "Resume from an earlier checkpoint, or start the run again from step 0"
    if not path.exists():
        raise CheckpointError(path, "does not exist", "Check the path, or start from step 0")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "is empty (0 bytes): its save never finished", restart)
    try:
        # weights_only=True: unpickle tensors and plain containers only, never arbitrary code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The messages below stay the same across torch versions; torch's own is chained.
        raise CheckpointError(
            path,
            "holds objects that torch.load(weights_only=True) refuses to unpickle",
            "Re-save it with save_checkpoint; load a file with weights_only=False only if you "
            "made it yourself",
        ) from e
    except Exception as e:  # a cut or scrambled zip archive: RuntimeError, EOFError, ...
        raise CheckpointError(
            path, "is truncated or corrupted: torch.load cannot read it as an archive", restart
        ) from e
    required = {"format", "step", "model", "optimizer", "rng", "extra", "sha256"}
    if not isinstance(checkpoint, dict) or not required <= checkpoint.keys():
        missing = sorted(required - set(checkpoint)) if isinstance(checkpoint, dict) else required
        raise CheckpointError(
            path,
            f"is not a checkpoint written by save_checkpoint (missing {', '.join(missing)})",
            "Load it with torch.load and restore its parts by hand",
        )
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            f"has format {checkpoint['format']}, this code reads format {CHECKPOINT_FORMAT}",
            "Load it with the version of lecture_utils that wrote it",
        )
    recorded = checkpoint.pop("sha256")
    if content_sha256(checkpoint) != recorded:
        raise CheckpointError(
            path,
            "loads, but its contents do not match the SHA-256 recorded at save time "
            "(some bytes changed on disk)",
            restart,
        )
    return checkpoint


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    data_generator: torch.Generator | None = None,
) -> int:
    """Restore a checkpoint into model (and optimizer, RNGs, data generator); the step it holds."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    try:
        model.load_state_dict(checkpoint["model"])
        if optimizer is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(
            path,
            "does not fit this model or optimizer (different names or shapes of parameters)",
            "Build the model and optimizer with the settings used when it was saved",
        ) from e
    set_rng_states(checkpoint["rng"])  # global generators: torch, CUDA, NumPy, Python
    if data_generator is not None:
        if checkpoint["rng"]["data_generator"] is None:
            raise CheckpointError(
                path,
                "holds no data generator state",
                "Pass data_generator=... to save_checkpoint, or resume without one",
            )
        data_generator.set_state(checkpoint["rng"]["data_generator"])
    return checkpoint["step"]


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


def _check_exact_int(answer: Any, expected: int, hints: dict[int, str]) -> Feedback:
    """An integer answer must be exactly right; typical wrong ones get their hint."""
    if isinstance(answer, bool) or not isinstance(answer, (int, np.integer, float)):
        return wrong(f"expected a whole number, got {type(answer).__name__}.")
    if isinstance(answer, float) and not answer.is_integer():
        return wrong("a count of windows or bytes is a whole number.")
    if int(answer) == expected:
        return CORRECT
    if int(answer) in hints:
        return wrong(hints[int(answer)])
    return wrong(f"{'too large' if answer > expected else 'too small'}; recount from the start.")


@EXERCISES.checker(1, "random windows in a file of N tokens")
def _(answer: Any) -> Feedback:
    n, t = 1000, 8
    return _check_exact_int(
        answer,
        n - t,
        {
            n - t + 1: "a window needs T inputs plus 1 more token for the last target, so the "
            "last start is N - T - 1, not N - T.",
            n: "a window cannot start in the last T tokens: it would run off the end.",
            n // t: "that counts non-overlapping chunks; a random window may start at any token.",
            n - t - 1: "starts run from 0 to N - T - 1 inclusive: that is N - T of them.",
        },
    )


@EXERCISES.checker(2, "bytes a batch reads from the memmap")
def _(answer: Any) -> Feedback:
    b, t, itemsize = 32, 1024, 2
    return _check_exact_int(
        answer,
        b * (t + 1) * itemsize,
        {
            b * t * itemsize: "each window is T inputs plus 1 extra token for the last target.",
            b * (t + 1) * 8: "that is the size after conversion to int64; the file holds "
            "uint16 tokens, 2 bytes each.",
            2 * b * t * itemsize: "inputs and targets overlap: both come from one window of "
            "T + 1 tokens, read once.",
            b * (t + 1): "tokens are uint16: 2 bytes each, not 1.",
            b * t * 8: "that is the int64 input tensor; the question is about the uint16 file.",
        },
    )


@EXERCISES.checker(3, "what a bit-identical resume needs")
def _(answer: Any) -> Feedback:
    if isinstance(answer, str) or not isinstance(answer, (set, frozenset, list, tuple)):
        return wrong("answer with a set of strings taken from CHECKPOINT_ITEMS.")
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


@EXERCISES.checker(4, "make a checkpoint save atomic")
def _(save_atomic: Any) -> Feedback:
    if not callable(save_atomic):
        return wrong("pass your function save_atomic itself (no parentheses).")
    old, new = {"step": 1, "w": torch.arange(4.0)}, {"step": 2, "w": torch.zeros(4)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        replaces: list = []
        fsyncs: list = []
        try:
            with (
                unittest.mock.patch.object(os, "replace", _spy(os.replace, replaces)),
                unittest.mock.patch.object(os, "rename", _spy(os.rename, replaces)),
                unittest.mock.patch.object(os, "fsync", _spy(os.fsync, fsyncs)),
            ):
                save_atomic(old, path)
        except NotImplementedError:
            return UNANSWERED
        if not path.exists():
            return wrong("after save_atomic(obj, path) there is no file at path.")
        loaded = torch.load(path, weights_only=True)
        if loaded["step"] != 1 or not torch.equal(loaded["w"], old["w"]):
            return wrong("torch.load(path) did not give back the object you saved.")
        with unittest.mock.patch.object(torch, "save", crash_halfway_through_save):
            try:
                save_atomic(new, path)
            except SimulatedCrash:
                pass
            else:
                return wrong("the crash inside torch.save was swallowed: clean up, then re-raise.")
        try:
            survivor = torch.load(path, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError):
            return wrong(
                "a crash mid-save destroyed the previous checkpoint: write to a temporary file "
                "in the same directory, then os.replace(temp, path)."
            )
        if survivor["step"] != 1:
            return wrong("after the crash the file holds something other than the old checkpoint.")
        leftovers = sorted(p.name for p in Path(tmp).iterdir() if p.name != path.name)
        if leftovers:
            return wrong(
                f"the failed save left {leftovers[0]!r} behind: delete the temporary file "
                "when saving fails (try/except, then raise)."
            )
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

