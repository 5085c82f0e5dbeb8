"""Tests for lecture_utils.tensors (notebook 01)."""

import itertools

import matplotlib
import pytest
import torch
from einops import rearrange

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from lecture_utils.tensors import (
    EXERCISES,
    attention_scores,
    causal_mask,
    contiguous_strides,
    draw_strides,
    same_storage,
    sliding_window_mask_reference,
    storage_index,
    storage_indices,
    storage_of,
    to_heads_reference,
)


def _views() -> dict[str, torch.Tensor]:
    base = torch.arange(60).view(3, 4, 5)
    return {
        "base": base,
        "transpose": base.transpose(0, 2),
        "slice": base[1:, 2:],
        "step": base[:, ::2, 1::2],
        "permute": base.permute(1, 2, 0),
        "row": base[2, 1],
        "chained": base[:, 1:, ::2].transpose(0, 1),
    }


# --- storage and strides ---------------------------------------------------------------------


def test_contiguous_strides_match_pytorch():
    for shape in [(4, 8, 16), (3,), (2, 3), (5, 1, 2), ()]:
        assert contiguous_strides(shape) == torch.empty(shape).stride()


def test_contiguous_strides_bad_shape():
    with pytest.raises(ValueError, match="sizes >= 0"):
        contiguous_strides((2, -1))
    with pytest.raises(ValueError, match="sizes >= 0"):
        contiguous_strides((2.0, 3))


@pytest.mark.parametrize("name", list(_views()))
def test_storage_index_matches_pytorch_for_every_element(name):
    t = _views()[name]
    storage = storage_of(t)
    for idx in itertools.product(*(range(n) for n in t.shape)):
        assert storage[storage_index(t, idx)] == t[idx]
        # as_strided with the computed offset reads the same element PyTorch indexes.
        assert t.as_strided((), (), storage_index(t, idx)) == t[idx]


@pytest.mark.parametrize("name", list(_views()))
def test_storage_indices_vectorized(name):
    t = _views()[name]
    offsets = storage_indices(t)
    assert offsets.shape == t.shape and offsets.dtype == torch.int64
    assert torch.equal(storage_of(t)[offsets], t)


def test_storage_index_lecture_example():
    assert storage_index(torch.zeros(4, 4), (1, 2)) == 6


def test_storage_index_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="one index per dimension"):
        storage_index(x, (1,))
    with pytest.raises(IndexError, match="out of range for dimension 1 of size 3"):
        storage_index(x, (1, 3))
    with pytest.raises(IndexError, match="use 0..1"):
        storage_index(x, (-1, 0))
    with pytest.raises(TypeError, match="must be ints"):
        storage_index(x, (1.0, 0))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        storage_index([[1, 2]], (0, 0))


def test_storage_of_is_a_view_of_the_whole_storage():
    x = torch.arange(12.0).view(3, 4)
    s = storage_of(x[1:, 2:])
    assert torch.equal(s, x.flatten()) and same_storage(s, x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        storage_of(3)


def test_same_storage_views_and_copies():
    x = torch.arange(6.0).view(2, 3)
    for v in (x[0], x[:, 1], x.view(3, 2), x.t(), x[1:], x.reshape(3, 2)):
        assert same_storage(x, v)
    for c in (x.t().contiguous(), x.t().reshape(6), x.clone(), x + 0, torch.arange(6.0)):
        assert not same_storage(x, c)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        same_storage(x, [1.0])


# --- masks and named dimensions --------------------------------------------------------------


def test_causal_mask():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, torch.ones(4, 4).tril().bool())
    assert causal_mask(1).tolist() == [[True]]
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            causal_mask(bad)


def test_attention_scores_matches_matmul_and_checks_shapes():
    from jaxtyping import TypeCheckError

    q, k = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    assert torch.allclose(attention_scores(q, k), q @ k.transpose(-2, -1), atol=1e-5)
    with pytest.raises(TypeCheckError, match="'k'"):
        attention_scores(q, torch.randn(1, 5, 4))  # batch 1 would broadcast silently
    with pytest.raises(TypeCheckError):
        attention_scores(q, torch.randn(2, 5, 3))  # hidden differs
    with pytest.raises(TypeCheckError):
        attention_scores(q.long(), k.long())  # not floating point


def test_sliding_window_mask_reference():
    m = sliding_window_mask_reference(5, 2)
    for i, j in itertools.product(range(5), range(5)):
        assert m[i, j].item() == (i - 2 < j <= i)
    assert torch.equal(sliding_window_mask_reference(4, 4), causal_mask(4))
    with pytest.raises(ValueError, match="window must be >= 1"):
        sliding_window_mask_reference(4, 0)


def test_to_heads_reference_matches_rearrange():
    x = torch.randn(2, 3, 8)
    assert torch.equal(
        to_heads_reference(x, 4), rearrange(x, "b s (h d) -> b h s d", h=4)
    )


# --- figure ----------------------------------------------------------------------------------


def test_draw_strides():
    x = torch.arange(6).view(2, 3)
    for t in (x, x.t(), x[:, 1:], x[1:]):
        ax = draw_strides(t, "t")
        assert "stride" in ax.get_title()
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="2-D"):
        draw_strides(torch.arange(6))
    with pytest.raises(ValueError, match="at most 24"):
        draw_strides(torch.arange(30).view(5, 6))


# --- exercises -------------------------------------------------------------------------------


def _message(number, answer):
    return EXERCISES.feedback(number, answer)


def test_exercise_1():
    strides = (8 * 16, 16, 1)  # row-major strides of (4, 8, 16), worked out by hand
    right = 2 * strides[0] + 3 * strides[1] + 5 * strides[2]
    assert right == 309 and _message(1, right).correct is True
    assert _message(1, 309.0).correct is True and _message(1, 310).correct is False  # exact
    assert "bytes" in _message(1, right * torch.zeros((), dtype=torch.float32).element_size()
                                ).message
    assert "multiplied by its dimension's stride" in _message(1, 2 + 3 + 5).message
    column_major = (1, 4, 4 * 8)  # the first dimension moves by 1
    assert "column-major" in _message(1, 2 * column_major[0] + 3 * column_major[1]
                                      + 5 * column_major[2]).message
    assert "which stride goes with which index" in _message(1, 2 * 16 + 3 * 128 + 5).message


def test_exercise_2():
    assert _message(2, (True, False, True, False, False)).correct is True
    assert _message(2, [True, False, True, False, False]).correct is True
    verdict = _message(2, (True, False, True, False, True))
    assert verdict.correct is False and "x.t() is not contiguous" in verdict.message
    assert "rows have gaps" in _message(2, (True, True, True, False, False)).message
    assert "x[1:3] is contiguous" in _message(2, (False, False, True, False, False)).message
    two_wrong = _message(2, (False, True, True, False, False)).message
    assert "x[1:3] is contiguous" in two_wrong and "2 of the 5 are wrong" in two_wrong
    assert "give 5 booleans" in _message(2, (True,)).message
    assert "True or False" in _message(2, (1, 0, 1, 0, 0)).message
    assert "a tuple or list of 5 booleans, got a str" in _message(2, "TFTFF").message


def _solution_3(n, w):
    ones = torch.ones(n, n, dtype=torch.bool)
    return ones.tril() & ~ones.tril(diagonal=-w)


def test_exercise_3():
    assert _message(3, _solution_3).correct is True
    assert "plain causal mask" in _message(3, lambda n, w: causal_mask(n)).message
    assert "transposed" in _message(3, lambda n, w: _solution_3(n, w).T).message
    assert "inverted" in _message(3, lambda n, w: ~_solution_3(n, w)).message
    assert "yours sees 4" in _message(3, lambda n, w: _solution_3(n, w + 1)).message
    # tril(diagonal=-window + 1) hides one key too many: each query sees window - 1.
    def one_short(n, w):
        ones = torch.ones(n, n, dtype=torch.bool)
        return ones.tril() & ~ones.tril(diagonal=-w + 1)

    assert "yours sees 2" in _message(3, one_short).message
    assert "boolean" in _message(3, lambda n, w: _solution_3(n, w).int()).message


def test_exercise_4():
    def solution(x, h):
        return rearrange(x, "b s (h d) -> b h s d", h=h)

    assert _message(4, solution).correct is True
    assert "heads comes before seq" in _message(
        4, lambda x, h: rearrange(x, "b s (h d) -> b s h d", h=h)).message
    assert "wrong order" in _message(
        4, lambda x, h: rearrange(x, "b s (d h) -> b h s d", h=h)).message
    assert "pass it as heads=num_heads" in _message(
        4, lambda x, h: rearrange(x, "b s (h d) -> b h s d", d=h)).message
    assert "expected shape (2, 4, 3, 2)" in _message(4, lambda x, h: x.unsqueeze(1)).message
    assert "return a tensor" in _message(4, lambda x, h: x.tolist()).message


def test_exercise_5():
    x = torch.arange(60).view(3, 4, 5)
    y = x[:, 1:, ::2].transpose(0, 1)
    assert _message(5, int(y[2, 1, 1])).correct is True and int(y[2, 1, 1]) == 37
    assert "storage offset" in _message(5, 37 - 5).message
    no_step = x[:, 1:].transpose(0, 1)
    assert "::2" in _message(5, int(no_step[2, 1, 1])).message
    no_transpose = x[:, 1:, ::2]
    assert "transpose" in _message(5, int(no_transpose[2, 1, 1])).message


@pytest.mark.parametrize("number", range(1, 6))
def test_exercise_verdicts_on_unanswered_and_junk(number):
    assert _message(number, None).correct is None
    assert "got nan (not a number)" in _message(number, float("nan")).message
    text = _message(number, "forty-two")
    assert text.correct is False and ("str" in text.message or "text" in text.message)
    assert "raised" not in text.message
    assert EXERCISES.exercises[number].wants


def test_function_stubs_are_not_answered_yet():
    assert _message(3, lambda n, w: None).correct is None
    assert _message(4, lambda x, h: None).correct is None
    assert "expected the function" in _message(3, "sliding_window_mask").message
    assert "exactly" in EXERCISES.exercises[1].wants and "exactly" in EXERCISES.exercises[5].wants
