"""Notebook 01: tensors, storage and strides, views and copies, einops and jaxtyping.

A PyTorch tensor is a 1-D block of memory (its storage) plus metadata: a shape, one stride per
dimension and a storage offset. Element (i0, i1, ...) lives at storage index
offset + i0 * stride0 + i1 * stride1 + ...  (strides count elements, not bytes).
"""

# No `from __future__ import annotations`: jaxtyping and beartype read the real annotations.

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from beartype import beartype
from einops import einsum
from jaxtyping import Bool, Float, Int, Shaped, jaxtyped

from lecture_utils.dtypes import _check_shape
from lecture_utils.exercises import CORRECT, UNANSWERED, Exercises, Feedback, check_number, wrong

# --------------------------------------------------------------------------------------------
# Storage and strides
# --------------------------------------------------------------------------------------------


def _require_tensor(x: object, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major strides (in elements) of a freshly allocated tensor of this shape."""
    shape = _check_shape(shape)
    strides = []
    step = 1
    for size in reversed(shape):  # the last dimension is the one that moves by 1
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def storage_index(x: Shaped[torch.Tensor, "..."], index: Sequence[int]) -> int:
    """Position (in elements) of x[index] in x's storage: offset + sum of index * stride."""
    _require_tensor(x)
    index = tuple(index)
    if len(index) != x.dim():
        raise ValueError(
            f"index {index} has {len(index)} entries but x has {x.dim()} dimensions "
            f"(shape {tuple(x.shape)}): give one index per dimension"
        )
    for dim, (i, size) in enumerate(zip(index, x.shape)):
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"index entries must be ints, got {type(i).__name__} in dimension {dim}")
        if not 0 <= i < size:
            raise IndexError(
                f"index {i} is out of range for dimension {dim} of size {size}: use 0..{size - 1}"
            )
    return x.storage_offset() + sum(i * stride for i, stride in zip(index, x.stride()))


def storage_indices(x: Shaped[torch.Tensor, "..."]) -> Int[torch.Tensor, "..."]:
    """storage_index of every element of x at once, as an int64 tensor of x's shape."""
    _require_tensor(x)
    offsets = torch.full(tuple(x.shape), x.storage_offset(), dtype=torch.int64, device=x.device)
    for dim, (size, stride) in enumerate(zip(x.shape, x.stride())):
        # Broadcast arange(size) * stride along dimension `dim` only.
        view_shape = [1] * x.dim()
        view_shape[dim] = size
        offsets = offsets + (torch.arange(size, device=x.device) * stride).view(view_shape)
    return offsets


def storage_of(x: Shaped[torch.Tensor, "..."]) -> Shaped[torch.Tensor, " storage"]:
    """The whole storage under x as a 1-D tensor of x's dtype (a view: no copy)."""
    _require_tensor(x)
    num_elements = x.untyped_storage().nbytes() // x.element_size()
    # as_strided takes an absolute storage offset, so 0 starts at the storage's first element.
    return x.as_strided((num_elements,), (1,), 0)


def same_storage(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether x and y are views of the same memory (compare their storages' addresses)."""
    _require_tensor(x, "x")
    _require_tensor(y, "y")
    # x.data_ptr() points at x's first element, which moves with slicing; the storage does not.
    return x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()


# --------------------------------------------------------------------------------------------
# Masks and named-dimension operations
# --------------------------------------------------------------------------------------------


def causal_mask(seq_len: int) -> Bool[torch.Tensor, "seq_q seq_k"]:
    """mask[i, j] is True when query position i may attend to key position j, that is j <= i."""
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    # triu(diagonal=1) marks the strictly-future keys j > i; the mask allows everything else.
    future = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(diagonal=1)
    return ~future


@jaxtyped(typechecker=beartype)
def attention_scores(
    q: Float[torch.Tensor, "batch seq_q hidden"],
    k: Float[torch.Tensor, "batch seq_k hidden"],
) -> Float[torch.Tensor, "batch seq_q seq_k"]:
    """Dot product of every query with every key of the same batch element (shapes checked)."""
    return einsum(q, k, "batch seq_q hidden, batch seq_k hidden -> batch seq_q seq_k")


# --------------------------------------------------------------------------------------------
# Figure: a 2-D tensor, the storage under it, and how (i, j) maps to a storage index
# --------------------------------------------------------------------------------------------

MAX_DRAWN_STORAGE = 24  # more cells than this do not fit readably in one strip
ROW_COLORS = ("#CDE4F5", "#F9D9C4", "#CFEDE3", "#F2D7E8", "#FBE9C0", "#D9EEF9")  # light, per row


def draw_strides(x: Shaped[torch.Tensor, "rows cols"], name: str = "x", ax=None):
    """Draw x as a grid above the 1-D storage it reads; label each storage cell with its (i, j)."""
    _require_tensor(x)
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(f"draw_strides draws 2-D tensors with at least one element: x has "
                         f"shape {tuple(x.shape)}")
    storage = storage_of(x)
    if storage.numel() > MAX_DRAWN_STORAGE:
        raise ValueError(
            f"the storage has {storage.numel()} elements; draw one with at most "
            f"{MAX_DRAWN_STORAGE} (e.g. torch.arange(12).view(3, 4))"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.9 * storage.numel() + 2), 4.5))
    rows, cols = x.shape
    n = storage.numel()
    offsets = storage_indices(x)
    strip_y, grid_bottom = 0.0, 2.6
    grid_left = (n - cols) / 2
    owner = {int(offsets[i, j]): (i, j) for i in range(rows) for j in range(cols)}

    # The tensor as a grid; each row has its own colour, repeated where it sits in the storage.
    for i in range(rows):
        for j in range(cols):
            left, bottom = grid_left + j, grid_bottom + (rows - 1 - i)
            ax.add_patch(plt.Rectangle((left, bottom), 1, 1, edgecolor="black",
                                       facecolor=ROW_COLORS[i % len(ROW_COLORS)]))
            ax.text(left + 0.5, bottom + 0.58, f"{x[i, j].item():g}", ha="center", va="center")
            ax.text(left + 0.5, bottom + 0.2, f"({i},{j})", ha="center", va="center",
                    fontsize=9, color="dimgray")
    ax.text(grid_left - 0.2, grid_bottom + rows / 2, name, ha="right", va="center")

    # The storage strip: which (i, j) reads each element (grey: no element of x reads it).
    for s in range(n):
        i_j = owner.get(s)
        face = ROW_COLORS[i_j[0] % len(ROW_COLORS)] if i_j else "#E5E5E5"
        ax.add_patch(plt.Rectangle((s, strip_y), 1, 1, facecolor=face, edgecolor="black",
                                   hatch=None if i_j else "//"))
        ax.text(s + 0.5, strip_y + 0.5, f"{storage[s].item():g}", ha="center", va="center")
        label = f"({i_j[0]},{i_j[1]})" if i_j else "-"
        ax.text(s + 0.5, strip_y - 0.3, label, ha="center", va="center", fontsize=9,
                color="dimgray")
        ax.text(s + 0.5, strip_y - 0.75, str(s), ha="center", va="center", fontsize=10)
    ax.text(-0.2, strip_y + 0.5, "storage", ha="right", va="center")
    ax.text(-0.2, strip_y - 0.3, "read as", ha="right", va="center", fontsize=9, color="dimgray")
    ax.text(-0.2, strip_y - 0.75, "index", ha="right", va="center", fontsize=10)

    # One step along each dimension, drawn as a jump over the storage: that jump is the stride.
    start = int(offsets[0, 0])
    s0, s1 = x.stride()
    jumps = [(s1, "j+1", "#0072B2")] if cols > 1 else []
    jumps += [(s0, "i+1", "#D55E00")] if rows > 1 else []
    for k, (stride, what, color) in enumerate(sorted(jumps)):
        ax.annotate("", xy=(start + stride + 0.5, strip_y + 1.0),
                    xytext=(start + 0.5, strip_y + 1.0),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.8,
                                "connectionstyle": f"arc3,rad={-0.5 if k == 0 else -0.35}"})
        ax.text(start + stride / 2 + 0.5, strip_y + 1.15 + 0.42 * (stride if k else 1) ** 0.5,
                f"{what}: +{stride}", ha="center", va="bottom", fontsize=10, color=color)

    offset = x.storage_offset()
    formula = f"{offset} + i·{s0} + j·{s1}" if offset else f"i·{s0} + j·{s1}"
    ax.set_title(f"{name}: shape {tuple(x.shape)}, stride {(s0, s1)}; (i, j) → {formula}")
    ax.set_xlim(-1.8, max(n, cols) + 0.3)
    ax.set_ylim(-1.1, grid_bottom + rows + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


# --------------------------------------------------------------------------------------------
# Check yourself
# --------------------------------------------------------------------------------------------

EXERCISES = Exercises("01")

# Exercise 1: x[2, 3, 5] of a contiguous (4, 8, 16) tensor.
EX1_SHAPE, EX1_INDEX = (4, 8, 16), (2, 3, 5)


def _dot(index: Sequence[int], strides: Sequence[int]) -> int:
    return sum(i * s for i, s in zip(index, strides))


@EXERCISES.checker(1, "storage index of x[2, 3, 5] in a contiguous (4, 8, 16) tensor",
                   wants="an int (a storage index, counted in elements), exactly")
def _check_offset(answer: object) -> Feedback:
    strides = contiguous_strides(EX1_SHAPE)  # (128, 16, 1)
    column_major = tuple(reversed(contiguous_strides(tuple(reversed(EX1_SHAPE)))))  # (1, 4, 32)
    swapped = (strides[1], strides[0], strides[2])  # dims 0 and 1 given each other's stride
    itemsize = torch.empty((), dtype=torch.float32).element_size()
    return check_number(
        answer,
        storage_index(torch.empty(EX1_SHAPE), EX1_INDEX),
        rel_tol=0,
        hints={
            _dot(EX1_INDEX, strides) * itemsize: "that is in bytes; strides and storage indices "
            "count elements (multiply by 4 bytes only to get a byte address).",
            sum(EX1_INDEX): "each index must be multiplied by its dimension's stride "
            "(128, 16, 1).",
            _dot(EX1_INDEX, column_major): "those are column-major strides (1, 4, 32); PyTorch "
            "is row-major: the last dimension has stride 1, the first 8 * 16 = 128.",
            _dot(EX1_INDEX, swapped): "check which stride goes with which index: dim 0 has "
            "stride 8 * 16 = 128, dim 1 has stride 16.",
        },
    )


# The views of exercise 2, of x = torch.arange(24).view(4, 6).
CONTIGUITY_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "x[1:3]": lambda x: x[1:3],
    "x[:, 1:3]": lambda x: x[:, 1:3],
    "x[2]": lambda x: x[2],
    "x[:, 2]": lambda x: x[:, 2],
    "x.t()": lambda x: x.t(),
}
_CONTIGUITY_WHY = {
    "x[1:3]": "whole rows are one unbroken run of the storage (it only starts later).",
    "x[:, 1:3]": "each row keeps 2 of 6 elements, so the rows have gaps between them.",
    "x[2]": "one row is 6 neighbouring storage elements.",
    "x[:, 2]": "one column steps 6 elements at a time (stride (6,)).",
    "x.t()": "the transpose has strides (1, 6): the last dimension does not move by 1.",
}


@EXERCISES.checker(2, "which views are contiguous",
                   wants="five booleans (True or False) in a tuple or list, in the order listed, "
                         "all right")
def _check_contiguity(answer: object) -> Feedback:
    x = torch.arange(24).view(4, 6)
    expected = [fn(x).is_contiguous() for fn in CONTIGUITY_VIEWS.values()]
    if not isinstance(answer, (tuple, list)):
        return wrong(f"expected a tuple or list of {len(expected)} booleans, got a "
                     f"{type(answer).__name__}.")
    if len(answer) != len(expected):
        return wrong(f"give {len(expected)} booleans, one per view in the order listed; got "
                     f"{len(answer)}.")
    for view, got in zip(CONTIGUITY_VIEWS, answer):
        if not isinstance(got, bool):
            return wrong(f"answer True or False for each view, got {got!r} for {view}.")
    mistakes = [(view, want) for view, got, want in zip(CONTIGUITY_VIEWS, answer, expected)
                if got != want]
    if not mistakes:
        return CORRECT
    view, want = mistakes[0]
    more = f" ({len(mistakes)} of the 5 are wrong; this is the first.)" if len(mistakes) > 1 else ""
    return wrong(f"{view} {'is' if want else 'is not'} contiguous: {_CONTIGUITY_WHY[view]}{more}")


def sliding_window_mask_reference(seq_len: int, window: int) -> Bool[torch.Tensor, "seq seq"]:
    """mask[i, j] is True when i - window < j <= i: each query sees itself and window - 1 keys."""
    mask = causal_mask(seq_len)  # checks seq_len
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be >= 1 (an int: the keys each query sees), got {window!r}")
    too_old = torch.ones(seq_len, seq_len, dtype=torch.bool).tril(diagonal=-window)
    return mask & ~too_old


def _not_a_function(fn: object, signature: str) -> Feedback | None:
    """A verdict for an answer that is not a function, or None when it is one."""
    if callable(fn):
        return None
    return wrong(f"expected the function {signature} itself (its name, no call, no quotes), got "
                 f"a {type(fn).__name__}.")


@EXERCISES.checker(3, "a sliding-window causal mask",
                   wants="a function (seq_len, window) -> a (seq_len, seq_len) boolean tensor, "
                         "exactly right for several sizes")
def _check_sliding_window(fn: object) -> Feedback:
    if (verdict := _not_a_function(fn, "sliding_window_mask(seq_len, window)")) is not None:
        return verdict
    for seq_len, window in ((6, 3), (5, 1), (4, 4), (7, 2)):
        got = fn(seq_len, window)
        if got is None:
            return UNANSWERED
        want = sliding_window_mask_reference(seq_len, window)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return wrong(f"return a ({seq_len}, {seq_len}) tensor, got {shape}.")
        if got.dtype != torch.bool:
            return wrong("return a boolean tensor (True = may attend), not 0/1 numbers.")
        if torch.equal(got, want):
            continue
        if torch.equal(got, ~want):
            return wrong("your mask is inverted: True marks the keys a query *may* attend to.")
        if torch.equal(got, want.T):
            return wrong("your mask is transposed: rows are queries i, columns are keys j.")
        if torch.equal(got, causal_mask(seq_len)):
            return wrong("that is the plain causal mask: also hide keys j <= i - window.")
        for other in (window - 1, window + 1):
            if other >= 1 and torch.equal(got, sliding_window_mask_reference(seq_len, other)):
                return wrong(f"off by one: each query should see {window} keys (itself and the "
                             f"{window - 1} before it), yours sees {other}.")
        return wrong(f"wrong for seq_len={seq_len}, window={window}: row i should be True "
                     f"exactly at columns i - {window - 1} .. i.")
    return CORRECT


def to_heads_reference(
    x: Float[torch.Tensor, "batch seq heads_times_hidden"], num_heads: int
) -> Float[torch.Tensor, "batch heads seq hidden"]:
    """(batch, seq, heads * hidden) -> (batch, heads, seq, hidden) with plain PyTorch."""
    _require_tensor(x)
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, seq, heads * hidden), got shape {tuple(x.shape)}")
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1 \
            or x.shape[-1] % num_heads:
        raise ValueError(f"num_heads must be a positive int that divides x's last dimension "
                         f"({x.shape[-1]}), got {num_heads!r}")
    batch, seq, total = x.shape
    return x.view(batch, seq, num_heads, total // num_heads).transpose(1, 2)


# Exercise 4 splits x of shape (2, 3, 8) into 4 heads of 2 features: heads and hidden differ,
# so a mix-up of the two shows in the shape.
EX4_SHAPE, EX4_HEADS = (2, 3, 8), 4


@EXERCISES.checker(4, "split heads with rearrange",
                   wants="a function (x, num_heads) -> a (batch, heads, seq, hidden) tensor of "
                         "x's values")
def _check_to_heads(fn: object) -> Feedback:
    if (verdict := _not_a_function(fn, "to_heads(x, num_heads)")) is not None:
        return verdict
    batch, seq, total = EX4_SHAPE
    hidden = total // EX4_HEADS
    x = torch.arange(batch * seq * total, dtype=torch.float32).view(EX4_SHAPE)
    got = fn(x, EX4_HEADS)
    if got is None:
        return UNANSWERED
    if not isinstance(got, torch.Tensor):
        return wrong(f"return a tensor, got {type(got).__name__}.")
    want = to_heads_reference(x, EX4_HEADS)
    split = x.view(batch, seq, EX4_HEADS, hidden)
    if got.shape == split.shape and torch.equal(got, split):
        return wrong("the heads are split but still after seq: the output is "
                     "(batch, heads, seq, hidden), so heads comes before seq.")
    # num_heads passed as the size of each head's features: rearrange(..., hidden=num_heads).
    as_hidden = x.view(batch, seq, hidden, EX4_HEADS).transpose(1, 2)
    if got.shape == as_hidden.shape and torch.equal(got, as_hidden):
        return wrong(f"{hidden} heads of {EX4_HEADS} features: num_heads is the number of "
                     "heads, so pass it as heads=num_heads.")
    if got.shape != want.shape:
        return wrong(f"expected shape {tuple(want.shape)} for x of shape {EX4_SHAPE} and "
                     f"{EX4_HEADS} heads, got {tuple(got.shape)}.")
    # (hidden heads) instead of (heads hidden): each head gets every 4th feature.
    interleaved = x.view(batch, seq, hidden, EX4_HEADS).permute(0, 3, 1, 2)
    if torch.equal(got, interleaved):
        return wrong("the split is in the wrong order: write (heads hidden), heads first, "
                     "because each head's features are neighbours in the last dimension.")
    if not torch.equal(got, want):
        return wrong("right shape, wrong values: compare with x.view(b, s, h, d).transpose(1, 2).")
    return CORRECT


def _exercise_5_view(x: torch.Tensor) -> torch.Tensor:
    """The view of exercise 5: drop row 0 of each matrix, every other column, swap dims 0, 1."""
    return x[:, 1:, ::2].transpose(0, 1)


@EXERCISES.checker(5, "storage index through a slice, a step and a transpose",
                   wants="an int (a storage index, counted in elements), exactly")
def _check_chained_view(answer: object) -> Feedback:
    x = torch.arange(60).view(3, 4, 5)
    index = (2, 1, 1)
    y = _exercise_5_view(x)
    # Each mistake leaves out one step of the chain, and lands on a different storage index.
    no_step = x[:, 1:].transpose(0, 1)
    no_transpose = x[:, 1:, ::2]
    return check_number(
        answer,
        storage_index(y, index),
        rel_tol=0,
        hints={
            storage_index(y, index) - y.storage_offset(): "you forgot the storage offset: "
            "x[:, 1:, ...] starts one row (5 elements) into the storage.",
            storage_index(no_step, index): "the step ::2 doubles the last stride: it is 2, "
            "not 1.",
            _dot(index, no_transpose.stride()) + no_transpose.storage_offset(): "you left out "
            "the transpose: it swaps the first two strides, so y has strides (5, 20, 2).",
        },
    )
