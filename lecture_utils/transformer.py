"""Notebook 09: a whole Transformer's accounting: parameters, FLOPs, activation memory, KV cache.

One small decoder-only Transformer covers the two common families through one config:
GPT-2 style (LayerNorm, GELU MLP, learned positions, biases, tied embeddings) and Llama style
(RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention, untied output layer). Next to
it, closed-form accounting as plain functions of the config, each checked against a measurement
in the tests and the notebook: parameters against the module built on the meta device, FLOPs
against FlopCounterMode, activation bytes against the tensors autograd saves, the KV cache
against a real cached generation loop.

The same questions from a terminal:

    python -m lecture_utils.napkin transformer --preset llama3-8b --seq-len 8192
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import textwrap
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Bool, Float, Int
from matplotlib.ticker import FuncFormatter, NullFormatter
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from lecture_utils.device import as_device, parse_device
from lecture_utils.dtypes import as_float_dtype
from lecture_utils.exercises import (
    DEFAULT_REL_TOL,
    Exercises,
    Feedback,
    as_number,
    check_count,
    check_number,
    tolerance_text,
    wrong,
)
from lecture_utils.flops import Timing, measure_times
from lecture_utils.hardware import (
    GB,
    GPUSpec,
    UnknownGPUError,
    current_gpu,
    lookup_gpu,
    normalize_dtype,
)
from lecture_utils.napkin import bytes_per_parameter

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
POSITIONS = ("learned", "rope")
INDEX_BYTES = 8  # token and position ids are int64
OUTPUT_WIDTH = 100  # printed lines: wider ones wrap mid-word in a notebook
NORM_STATS_BYTES = 4  # LayerNorm's mean and 1/std: float32 on a GPU even for 16-bit inputs
LOGSUMEXP_BYTES = 4  # a fused attention kernel's per-row statistic: float32 for every dtype


@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a decoder-only Transformer: sizes, and which of each component it uses."""

    vocab_size: int
    context_length: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int  # = num_heads: multi-head attention; fewer: grouped-query attention
    d_ff: int  # the MLP's hidden width
    norm: str = "rmsnorm"
    mlp: str = "swiglu"
    positions: str = "rope"
    bias: bool = False  # biases in every Linear and LayerNorm (GPT-2) or none (Llama)
    tied_embeddings: bool = False  # the output layer reuses the token embedding's matrix
    rope_theta: float = 10_000.0
    name: str = "custom"

    def __post_init__(self) -> None:
        for size in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads",
                     "num_kv_heads", "d_ff"):
            value = getattr(self, size)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{size} must be an int, got {type(value).__name__} {value!r}")
            if value <= 0:
                raise ValueError(f"{size} must be positive, got {value}")
        for flag in ("bias", "tied_embeddings"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string such as 'my-model', got {self.name!r}")
        for field, choices in (("norm", NORMS), ("mlp", MLPS), ("positions", POSITIONS)):
            if getattr(self, field) not in choices:
                raise ValueError(f"{field} must be one of {choices}, got {getattr(self, field)!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must divide d_model={self.d_model}: each head gets "
                f"d_model / num_heads dimensions (the nearest that does: "
                f"{_nearest_divisor(self.d_model, self.num_heads)})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_kv_heads={self.num_kv_heads} must divide num_heads={self.num_heads}: each "
                "key/value head serves an equal group of query heads"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(
                f"rotary positions rotate pairs: head_dim={self.head_dim} must be even")
        _check_rope_theta(self.rope_theta)

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head."""
        return self.d_model // self.num_heads

    @property
    def mlp_matrices(self) -> int:
        """Weight matrices in each MLP: 2 for GELU, 3 for SwiGLU (gate, up, down)."""
        return 2 if self.mlp == "gelu" else 3

    @property
    def kv_dim(self) -> int:
        """Width of the key (or value) projection: num_kv_heads * head_dim."""
        return self.num_kv_heads * self.head_dim

    def replace(self, **changes: object) -> TransformerConfig:
        """A copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)


def _check_rope_theta(theta: object) -> None:
    if isinstance(theta, bool) or not (
            isinstance(theta, (int, float)) and math.isfinite(theta) and theta > 1):
        raise ValueError(f"rope_theta must be a number > 1, got {theta!r}")


def _nearest_divisor(d_model: int, num_heads: int) -> int:
    """The divisor of d_model closest to num_heads (for an error message)."""
    return min((h for h in range(1, d_model + 1) if d_model % h == 0),
               key=lambda h: (abs(h - num_heads), h))


def gpt2_config(name: str, d_model: int, num_layers: int, num_heads: int) -> TransformerConfig:
    """A GPT-2 size: LayerNorm, GELU MLP of width 4 d, learned positions, biases, tied output."""
    return TransformerConfig(
        vocab_size=50257, context_length=1024, d_model=d_model, num_layers=num_layers,
        num_heads=num_heads, num_kv_heads=num_heads, d_ff=4 * d_model, norm="layernorm",
        mlp="gelu", positions="learned", bias=True, tied_embeddings=True, name=name,
    )


@dataclass(frozen=True)
class Preset:
    """A real model's config and its parameter count as published, with the source."""

    config: TransformerConfig
    published_parameters: int
    source: str


def _llama(name: str, vocab: int, context: int, d: int, layers: int, heads: int, kv: int,
           d_ff: int, theta: float) -> TransformerConfig:
    """A Llama size (RMSNorm, SwiGLU, rotary positions, no biases, untied output)."""
    return TransformerConfig(vocab_size=vocab, context_length=context, d_model=d,
                             num_layers=layers, num_heads=heads, num_kv_heads=kv, d_ff=d_ff,
                             rope_theta=theta, name=name)


_HF = "parameters of the Hugging Face checkpoint (model.num_parameters())"
PRESETS: dict[str, Preset] = {
    p.config.name: p
    for p in [
        Preset(gpt2_config("gpt2-small", 768, 12, 12), 124_439_808,
               f"{_HF}, openai-community/gpt2; the GPT-2 paper's table says 117M"),
        Preset(gpt2_config("gpt2-xl", 1600, 48, 25), 1_557_611_200,
               f"{_HF}, openai-community/gpt2-xl; the paper's table says 1542M"),
        Preset(_llama("llama2-7b", 32000, 4096, 4096, 32, 32, 32, 11008, 1e4), 6_738_415_616,
               f"{_HF}, meta-llama/Llama-2-7b-hf"),
        Preset(_llama("llama3-8b", 128256, 8192, 4096, 32, 32, 8, 14336, 5e5), 8_030_261_248,
               f"{_HF}, meta-llama/Meta-Llama-3-8B"),
        Preset(_llama("llama3-70b", 128256, 8192, 8192, 80, 64, 8, 28672, 5e5), 70_553_706_496,
               f"{_HF}, meta-llama/Meta-Llama-3-70B"),
    ]
}


def preset(name: str) -> TransformerConfig:
    """The config of a real model, by name (see PRESETS)."""
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a string such as 'llama3-8b', got {name!r}")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; use one of {sorted(PRESETS)}")
    return PRESETS[name].config


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x / rms(x) * weight: LayerNorm without the mean and the bias (Llama)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        _check_sizes(dim=dim)
        if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps)
                                         and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
        # Written out rather than F.rms_norm, whose fused kernels (and so what backward saves)
        # differ across PyTorch versions and devices.
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg: TransformerConfig) -> nn.Module:
    """The config's normalization over d_model."""
    cfg = _check_config(cfg)
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.d_model, bias=cfg.bias)
    return RMSNorm(cfg.d_model)


def rope_tables(head_dim: int, context_length: int, theta: float,
                device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """cos and sin of every position's rotation angles, each (context_length, head_dim)."""
    _check_sizes(head_dim=head_dim, context_length=context_length)
    if head_dim % 2:
        raise ValueError(f"rotary positions rotate pairs: head_dim={head_dim} must be even")
    _check_rope_theta(theta)
    device = None if device is None else as_device(device)
    # Computed on the CPU in float64, then moved: the same tables on every device.
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device="cpu", dtype=torch.float64)
                         / head_dim)
    angles = torch.outer(torch.arange(context_length, device="cpu", dtype=torch.float64),
                         inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # the two halves of a head share angles
    return angles.cos().float().to(device), angles.sin().float().to(device)


def apply_rope(x: Float[Tensor, "b t h d"], cos: Float[Tensor, "t d"],
               sin: Float[Tensor, "t d"]) -> Float[Tensor, "b t h d"]:
    """Rotate each pair (x_i, x_{i + d/2}) by its position's angle.

    This is Hugging Face's "rotate half" layout; Meta's reference code rotates adjacent pairs
    (x_2i, x_2i+1), the same rotation with the dimensions in another order.
    """
    if not all(isinstance(t, Tensor) for t in (x, cos, sin)) or x.dim() != 4 \
            or not cos.shape == sin.shape == (x.shape[1], x.shape[3]):
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                  for t in (x, cos, sin)]
        raise ValueError(f"x must be (b, t, h, d) and cos, sin both (t, d) of the same t and d "
                         f"(rope_tables(d, ...)[:t]); got x, cos, sin of {shapes}")
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


class Linear(nn.Linear):
    """nn.Linear, except that on the meta device it draws no initial values (there are none).

    Drawing them there does nothing but costs time: about half of building a full-size model
    on the meta device. On a real device it initializes exactly as nn.Linear does.
    """

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to max_seq_len."""

    def __init__(self, cfg: TransformerConfig, batch: int, max_seq_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        cfg = _check_config(cfg)
        _check_sizes(batch=batch, max_seq_len=max_seq_len)
        dtype = as_float_dtype(dtype)  # also takes a name such as "bf16"
        shape = (batch, max_seq_len, cfg.num_kv_heads, cfg.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.num_layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.length = 0  # tokens stored so far

    def store(self, layer: int, k: Float[Tensor, "b t kv d"],
              v: Float[Tensor, "b t kv d"]) -> tuple[Tensor, Tensor]:
        """Write this step's keys and values; return all of them so far, (b, s, kv, d) each."""
        if isinstance(layer, bool) or not isinstance(layer, int) \
                or not 0 <= layer < len(self.keys):
            raise ValueError(f"layer must be an int in 0..{len(self.keys) - 1}, got {layer!r}")
        cached = self.keys[layer].shape
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[2:] != cached[2:]:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must be (batch, tokens, {cached[2]}, {cached[3]}) for "
                                 f"this cache, got {got}: was the cache made for another config?")
        end = self.length + k.shape[1]
        if end > self.keys[layer].shape[1]:
            raise ValueError(f"the cache holds {self.keys[layer].shape[1]} tokens; {end} needed")
        if k.shape[0] != self.keys[layer].shape[0]:
            raise ValueError(f"the cache was made for a batch of {self.keys[layer].shape[0]} "
                             f"sequences, got {k.shape[0]}: make a KVCache per batch size")
        self.keys[layer][:, self.length:end] = k
        self.values[layer][:, self.length:end] = v
        return self.keys[layer][:, :end], self.values[layer][:, :end]

    def nbytes(self) -> int:
        """Bytes of every cache tensor."""
        return sum(t.nbytes for t in self.keys + self.values)


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads (num_kv_heads <= num_heads)."""

    def __init__(self, cfg: TransformerConfig, layer: int, fused: bool = False) -> None:
        super().__init__()
        self.cfg, self.layer, self.fused = cfg, layer, fused
        self.q_proj = Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.k_proj = Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)
        self.v_proj = Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)
        self.out_proj = Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: Float[Tensor, "b t d"], cos: Tensor | None, sin: Tensor | None,
                future: Bool[Tensor, "t s"] | None,
                cache: KVCache | None = None) -> Float[Tensor, "b t d"]:
        cfg, t = self.cfg, x.shape[1]
        q = rearrange(self.q_proj(x), "b t (h d) -> b t h d", d=cfg.head_dim)
        k = rearrange(self.k_proj(x), "b t (h d) -> b t h d", d=cfg.head_dim)
        v = rearrange(self.v_proj(x), "b t (h d) -> b t h d", d=cfg.head_dim)
        if cfg.positions == "rope":
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.store(self.layer, k, v)
        if self.fused:  # one kernel; it never stores the t x s probabilities
            out = F.scaled_dot_product_attention(
                rearrange(q, "b t h d -> b h t d"), rearrange(k, "b s h d -> b h s d"),
                rearrange(v, "b s h d -> b h s d"), enable_gqa=True,
                **({"is_causal": True} if cache is None else {"attn_mask": ~future}))
            return self.out_proj(rearrange(out, "b h t d -> b t (h d)"))
        # Grouped-query attention without copying K and V for every query head: the g query
        # heads that share a key/value head become g * t rows of one matmul against it.
        q = rearrange(q, "b t (kv g) d -> b kv (g t) d", kv=cfg.num_kv_heads)
        k = rearrange(k, "b s kv d -> b kv d s")
        v = rearrange(v, "b s kv d -> b kv s d")
        scores = rearrange(q @ k, "b kv (g t) s -> b kv g t s", t=t) / math.sqrt(cfg.head_dim)
        probs = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        out = rearrange(probs, "b kv g t s -> b kv (g t) s") @ v
        return self.out_proj(rearrange(out, "b kv (g t) d -> b t (kv g d)", t=t))


class MLP(nn.Module):
    """GELU: W2 gelu(W1 x). SwiGLU: W2 (silu(W1 x) * W3 x), three matrices instead of two."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        self.w1 = Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.w2 = Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        if cfg.mlp == "swiglu":
            self.w3 = Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)

    def forward(self, x: Float[Tensor, "b t d"]) -> Float[Tensor, "b t d"]:
        if self.kind == "gelu":
            return self.w2(F.gelu(self.w1(x), approximate="tanh"))  # GPT-2's tanh form
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: TransformerConfig, layer: int, fused_attention: bool = False) -> None:
        super().__init__()
        self.attn_norm, self.attn = make_norm(cfg), Attention(cfg, layer, fused_attention)
        self.mlp_norm, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x: Float[Tensor, "b t d"], cos: Tensor | None, sin: Tensor | None,
                future: Bool[Tensor, "t s"] | None,
                cache: KVCache | None = None) -> Float[Tensor, "b t d"]:
        x = x + self.attn(self.attn_norm(x), cos, sin, future, cache)
        return x + self.mlp(self.mlp_norm(x))


def _embedding(num: int, dim: int) -> nn.Embedding:
    """An embedding table drawn from N(0, 0.02^2), as GPT-2 and Llama do (nn.Embedding: N(0, 1))."""
    weight = torch.empty(num, dim)
    if not weight.is_meta:  # on the meta device there are no values to draw (and it is slow)
        nn.init.normal_(weight, std=0.02)
    return nn.Embedding(num, dim, _weight=weight)


class Transformer(nn.Module):
    """A decoder-only language model: token ids (b, t) -> next-token logits (b, t, vocab)."""

    def __init__(self, cfg: TransformerConfig, *, checkpoint_blocks: bool = False,
                 fused_attention: bool = False) -> None:
        super().__init__()
        self.cfg = _check_config(cfg)
        _check_flags(checkpoint_blocks=checkpoint_blocks, fused_attention=fused_attention)
        # fused_attention: F.scaled_dot_product_attention (FlashAttention-style kernels) instead
        # of the written-out matmuls. Same result; backward keeps far less (activation_bytes).
        # Activation checkpointing: keep only each block's input, recompute the rest in backward.
        self.checkpoint_blocks, self.fused_attention = checkpoint_blocks, fused_attention
        self.token_embedding = _embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positions == "learned":
            self.position_embedding = _embedding(cfg.context_length, cfg.d_model)
        else:  # rotary: no parameters, a table of angles (a buffer, not saved in checkpoints)
            cos, sin = rope_tables(cfg.head_dim, cfg.context_length, cfg.rope_theta,
                                   self.token_embedding.weight.device)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(Block(cfg, i, fused_attention) for i in range(cfg.num_layers))
        self.final_norm = make_norm(cfg)
        self.output = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.output.weight = self.token_embedding.weight

    def forward(self, ids: Int[Tensor, "b t"],
                cache: KVCache | None = None) -> Float[Tensor, "b t v"]:
        _check_ids(ids, self.cfg.vocab_size)
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache or None, got {type(cache).__name__}")
        t = ids.shape[1]
        start = 0 if cache is None else cache.length
        if start + t > self.cfg.context_length:
            raise ValueError(f"{start + t} tokens exceed context_length={self.cfg.context_length}")
        x = self.token_embedding(ids)
        cos = sin = None
        if self.cfg.positions == "learned":
            x = x + self.position_embedding(torch.arange(start, start + t, device=ids.device))
        else:
            cos, sin = self.rope_cos[start:start + t], self.rope_sin[start:start + t]
        # One mask for every layer: query i (at position start + i) sees keys 0..start + i.
        # A fused kernel without a cache needs none (is_causal).
        future = None
        if not (self.fused_attention and cache is None):
            future = torch.ones(t, start + t, dtype=torch.bool, device=ids.device).triu(start + 1)
        for block in self.blocks:
            if self.checkpoint_blocks and torch.is_grad_enabled() and cache is None:
                x = checkpoint(block, x, cos, sin, future, use_reentrant=False)
            else:
                x = block(x, cos, sin, future, cache)
        if cache is not None:
            cache.length += t
        return self.output(self.final_norm(x))


def _check_ids(ids: object, vocab_size: int, name: str = "ids") -> None:
    """Token ids must be a (batch, seq_len) int64 or int32 tensor of ids below vocab_size."""
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
        what = f"a {ids.dim()}-d {ids.dtype} tensor" if isinstance(ids, Tensor) else repr(ids)
        raise TypeError(f"{name} must be a (batch, seq_len) integer tensor of token ids "
                        f"(int64 or int32), got {what}")
    if 0 in ids.shape:
        raise ValueError(f"{name} must hold at least one token per sequence, got shape "
                         f"{tuple(ids.shape)}")
    # Checked on the CPU only: on a GPU it would wait for the device at every step.
    if ids.device.type == "cpu" and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids in {name} must be in [0, {vocab_size}) (vocab_size), got "
                         f"{ids.min().item()}..{ids.max().item()}")


def _check_model(model: object) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer(cfg), got {type(model).__name__}")


def language_model_loss(model: Transformer, ids: Int[Tensor, "b t"],
                        targets: Int[Tensor, "b t"]) -> Tensor:
    """Mean cross-entropy of the next-token predictions."""
    _check_model(model)
    _check_ids(targets, model.cfg.vocab_size, "targets")
    if isinstance(ids, Tensor) and targets.shape != ids.shape:
        raise ValueError(f"targets must have the shape of ids, {tuple(ids.shape)} (one next "
                         f"token per position), got {tuple(targets.shape)}")
    return F.cross_entropy(model(ids).flatten(0, 1), targets.flatten())


@torch.no_grad()
def generate(model: Transformer, prompt: Int[Tensor, "b t"], new_tokens: int, *,
             use_cache: bool = True) -> tuple[Int[Tensor, "b n"], KVCache | None]:
    """Greedy decoding of `new_tokens` tokens; with use_cache, one token per forward pass."""
    _check_model(model)
    _check_ids(prompt, model.cfg.vocab_size, "prompt")
    _check_sizes(new_tokens=new_tokens)
    _check_flags(use_cache=use_cache)
    batch, length = prompt.shape
    cache = None
    if use_cache:
        weight = model.token_embedding.weight
        cache = KVCache(model.cfg, batch, length + new_tokens - 1, weight.dtype, weight.device)
    ids, step_input = prompt, prompt
    for _ in range(new_tokens):
        logits = model(step_input if use_cache else ids, cache)
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
        step_input = next_id
    return ids[:, length:], cache


# ---------------------------------------------------------------------------------------------
# Closed-form accounting
# ---------------------------------------------------------------------------------------------


def _check_sizes(**sizes: object) -> None:
    """Each size must be a positive int (not a bool, not a float)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def _check_flags(**flags: object) -> None:
    """Each flag must be a bool: a string like "no" would otherwise count as True."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_config(cfg: object) -> TransformerConfig:
    """cfg itself, checked to be a TransformerConfig."""
    if not isinstance(cfg, TransformerConfig):
        raise TypeError(f"cfg must be a TransformerConfig (or preset('llama3-8b')), got "
                        f"{type(cfg).__name__}")
    return cfg


def num_parameters(cfg: TransformerConfig) -> dict[str, int]:
    """Parameters by part: embeddings, attention, mlp, norms, output (untied only), total."""
    cfg = _check_config(cfg)
    d, b = cfg.d_model, int(cfg.bias)
    attention = 2 * d * d + 2 * d * cfg.kv_dim + b * (2 * d + 2 * cfg.kv_dim)  # q, o; k, v
    matrices = cfg.mlp_matrices
    mlp = matrices * d * cfg.d_ff + b * ((matrices - 1) * cfg.d_ff + d)
    norm = d * (1 + b * (cfg.norm == "layernorm"))  # weight (and LayerNorm's bias)
    counts = {
        "embeddings": cfg.vocab_size * d + (cfg.context_length * d if cfg.positions == "learned"
                                            else 0),
        "attention": cfg.num_layers * attention,
        "mlp": cfg.num_layers * mlp,
        "norms": (2 * cfg.num_layers + 1) * norm,
        "output": 0 if cfg.tied_embeddings else cfg.vocab_size * d,
    }
    counts["total"] = sum(counts.values())
    return counts


def matmul_parameters(cfg: TransformerConfig) -> int:
    """Parameters that take part in a matmul: the N of 6 N T (no lookups, norms or biases)."""
    cfg = _check_config(cfg)
    per_layer = 2 * cfg.d_model * (cfg.d_model + cfg.kv_dim)
    per_layer += cfg.mlp_matrices * cfg.d_model * cfg.d_ff
    return cfg.num_layers * per_layer + cfg.vocab_size * cfg.d_model  # + the output layer


def forward_flops(cfg: TransformerConfig, batch: int, seq_len: int, *,
                  causal_halving: bool = False) -> dict[str, int]:
    """Matmul FLOPs of one forward pass (FLOPs), by part.

    "attention scores" is Q K^T and probs V. Counted in full (causal_halving=False), it is what
    FlopCounterMode reports and what PaLM's and nanoGPT's MFU formulas use. A causal model needs
    only the t(t+1)/2 scores on or below the diagonal, and kernels like FlashAttention skip the
    rest: causal_halving=True counts those.
    """
    cfg = _check_config(cfg)
    _check_sizes(batch=batch, seq_len=seq_len)
    _check_flags(causal_halving=causal_halving)
    tokens, d = batch * seq_len, cfg.d_model
    scores_per_head = seq_len * (seq_len + 1) // 2 if causal_halving else seq_len * seq_len
    flops = {
        "attention projections": cfg.num_layers * 2 * tokens * 2 * d * (d + cfg.kv_dim),
        "attention scores": cfg.num_layers * 2 * 2 * batch * cfg.num_heads * scores_per_head
                            * cfg.head_dim,
        "mlp": cfg.num_layers * 2 * tokens * cfg.mlp_matrices * d * cfg.d_ff,
        "output": 2 * tokens * d * cfg.vocab_size,
    }
    flops["total"] = sum(flops.values())
    return flops


def training_flops(cfg: TransformerConfig, batch: int, seq_len: int, *,
                   causal_halving: bool = False) -> dict[str, int]:
    """Matmul FLOPs of forward + backward (FLOPs): 3 x forward, part by part.

    Backward does two matmuls per forward matmul (the weight gradient and the input gradient).
    Every matmul input here needs its gradient, down to the embedding's output; the embedding's
    own backward is a scatter-add, not a matmul.
    """
    forward = forward_flops(cfg, batch, seq_len, causal_halving=causal_halving)
    return {part: 3 * value for part, value in forward.items()}


def six_n_t(cfg: TransformerConfig, batch: int, seq_len: int) -> int:
    """The napkin's training FLOPs, 6 x (all parameters) x tokens (FLOPs)."""
    _check_sizes(batch=batch, seq_len=seq_len)
    return 6 * num_parameters(cfg)["total"] * batch * seq_len


def attention_crossover(cfg: TransformerConfig, *, causal_halving: bool = False) -> float:
    """Sequence length (tokens) at which the attention scores cost as much as the MLP."""
    cfg = _check_config(cfg)
    _check_flags(causal_halving=causal_halving)
    # Per token and layer: scores 4 * seq_len * d (halved: 2 * (seq_len + 1) * d), mlp 2 m d d_ff.
    mlp = 2 * cfg.mlp_matrices * cfg.d_model * cfg.d_ff
    per_position = 4 * cfg.num_heads * cfg.head_dim
    return 2 * mlp / per_position - 1 if causal_halving else mlp / per_position


def _element_bytes(dtype: torch.dtype | str) -> int:
    """Bytes per element of a floating dtype given as torch.bfloat16 or 'bf16'."""
    return as_float_dtype(dtype).itemsize  # names the accepted spellings when it fails


def kv_cache_bytes(cfg: TransformerConfig, batch: int, seq_len: int,
                   dtype: torch.dtype | str = torch.bfloat16) -> int:
    """Bytes of the keys and values of every layer for batch x seq_len tokens."""
    cfg = _check_config(cfg)
    _check_sizes(batch=batch, seq_len=seq_len)
    return 2 * cfg.num_layers * batch * seq_len * cfg.kv_dim * _element_bytes(dtype)


def activation_bytes(cfg: TransformerConfig, batch: int, seq_len: int,
                     dtype: torch.dtype | str = torch.bfloat16, *, checkpoint_blocks: bool = False,
                     fused_attention: bool = False) -> dict[str, int]:
    """Bytes autograd saves for backward in a training step (model in `dtype`), by what saves it.

    Term by term, for this module's implementation, following one block top to bottom (each
    layer's terms summed over the layers), then what sits outside the blocks. Weights and the
    rotary tables are saved too, but they are in memory anyway, so they are not counted; so
    rotary positions save nothing new (x * cos saves cos, a table, not x).

    With checkpoint_blocks, the forward pass keeps only each block's input; backward recomputes
    one block at a time, so at the peak one block's activations are held on top ("total").
    With fused_attention, the kernel keeps q, k, v, its output and one float32 log-sum-exp per
    query row instead of the t x t probabilities, and needs no mask.
    """
    cfg = _check_config(cfg)
    _check_sizes(batch=batch, seq_len=seq_len)
    _check_flags(checkpoint_blocks=checkpoint_blocks, fused_attention=fused_attention)
    s, n = _element_bytes(dtype), batch * seq_len
    d, kv = cfg.d_model, cfg.kv_dim
    if cfg.norm == "layernorm":
        norm = n * d * s + 2 * n * NORM_STATS_BYTES  # its input; mean and 1/std per token
    else:
        norm = 2 * n * d * s + n * s  # its input and x / rms(x) (for the weight's gradient); 1/rms
    per_layer = {
        "norms": 2 * norm,
        "normed inputs of q, k, v and the mlp": 2 * n * d * s,  # each Linear saves its input
        "q and k (for Q K^T)": n * (d + kv) * s,
        "softmax output (for probs V)": batch * cfg.num_heads * seq_len * seq_len * s,
        "v (for probs V)": n * kv * s,
        "fused kernel's log-sum-exp": 0,
        "attention output (output projection input)": n * d * s,
        "mlp hidden": (2 if cfg.mlp == "gelu" else 4) * n * cfg.d_ff * s,  # gelu in, out; swiglu
    }                                                  # gate, silu(gate), up, product
    if fused_attention:
        per_layer["softmax output (for probs V)"] = 0
        # Its output is the output projection's input (already counted): only the log-sum-exp.
        per_layer["fused kernel's log-sum-exp"] = batch * cfg.num_heads * seq_len * LOGSUMEXP_BYTES
    if checkpoint_blocks:
        parts = {"block inputs (checkpoints)": cfg.num_layers * n * d * s,
                 "one block, recomputed in backward": sum(per_layer.values())}
    else:
        parts = {part: cfg.num_layers * value for part, value in per_layer.items()}
    parts["token ids"] = n * INDEX_BYTES  # the embedding's backward needs the ids
    if cfg.positions == "learned":
        parts["token ids"] += seq_len * INDEX_BYTES  # and the position ids
    # One bool per (query, key), shared by all layers; a fused kernel builds it on the fly.
    parts["causal mask"] = 0 if fused_attention else seq_len * seq_len
    parts["final norm and output layer input"] = norm + n * d * s
    parts["loss"] = n * cfg.vocab_size * s + n * INDEX_BYTES + s  # log-probs, targets, a sum
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------------------------------------
# Memory of training and inference, and MFU
# ---------------------------------------------------------------------------------------------


def training_memory(cfg: TransformerConfig, batch: int, seq_len: int, *,
                    optimizer: str = "adamw", precision: str = "mixed",
                    activation_dtype: torch.dtype | str = torch.bfloat16,
                    checkpoint_blocks: bool = False,
                    fused_attention: bool = False) -> dict[str, int]:
    """Bytes of a training step on one device: weights, gradients, optimizer state, activations.

    The first three come from notebook 00's bytes per parameter (`precision` is one of its
    recipes); the activations are those of the model run in `activation_dtype`.
    """
    per_param = bytes_per_parameter(optimizer, precision)
    params = num_parameters(cfg)["total"]
    memory = {
        "weights": params * (per_param.weights + per_param.weights_copy),
        "gradients": params * per_param.gradients,
        "optimizer state": params * per_param.optimizer_state,
        "activations": activation_bytes(cfg, batch, seq_len, activation_dtype,
                                        checkpoint_blocks=checkpoint_blocks,
                                        fused_attention=fused_attention)["total"],
    }
    memory["total"] = sum(memory.values())
    return memory


def _gpu_spec(gpu: str | GPUSpec | None) -> GPUSpec:
    """A datasheet: the named one, or this machine's GPU; never a guess."""
    if isinstance(gpu, GPUSpec):
        return gpu
    if gpu is not None:
        return lookup_gpu(gpu)
    spec = current_gpu()
    if spec is None:
        here = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU"
        raise UnknownGPUError(
            f"no datasheet for this machine ({here}): pass gpu='H100 SXM' (or another name in "
            "lecture_utils.hardware.GPUS) or a GPUSpec; the course does not guess a GPU's figures"
        )
    return spec


def max_kv_cache_tokens(cfg: TransformerConfig, gpu: str | GPUSpec | None = None,
                        dtype: torch.dtype | str = torch.bfloat16) -> int:
    """Tokens (batch x context, all sequences together) whose KV cache fits beside the weights.

    Weights and cache in `dtype`, on the datasheet's memory; activations of a decoding step
    are small next to both and left out.
    """
    spec = _gpu_spec(gpu)
    free = spec.memory_bytes - num_parameters(cfg)["total"] * _element_bytes(dtype)
    if free <= 0:
        return 0
    return int(free // kv_cache_bytes(cfg, 1, 1, dtype))


def estimate_mfu(cfg: TransformerConfig, batch: int, seq_len: int, step_seconds: float, *,
                 gpu: str | GPUSpec | None = None, dtype: str | torch.dtype = "bf16",
                 num_gpus: int = 1) -> float:
    """Model FLOPs utilization of a training step: its matmul FLOPs / (seconds x dense peak).

    Like nanoGPT's estimate_mfu (6 N + 12 L H Q T FLOPs per token, attention in full), but the
    peak is the datasheet's for the GPU at hand (or `gpu`); an unknown GPU is refused.
    """
    if isinstance(step_seconds, bool) or not isinstance(step_seconds, (int, float)) or not (
            math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"step_seconds must be a finite number > 0, got {step_seconds!r}")
    _check_sizes(num_gpus=num_gpus)
    peak = _gpu_spec(gpu).peak_flops(dtype)
    mfu = training_flops(cfg, batch, seq_len)["total"] / (step_seconds * peak * num_gpus)
    if mfu > 1:
        raise ValueError(
            f"an MFU of {mfu:.3g} is above the peak: is step_seconds={step_seconds!r} the time "
            "of one whole step (seconds, not milliseconds), measured after synchronizing?")
    return mfu


def describe(cfg: TransformerConfig, batch: int, seq_len: int, *,
             dtype: torch.dtype | str = torch.bfloat16,
             gpu: str | GPUSpec | None = None) -> str:
    """A napkin summary of one model at one batch x seq_len: parameters, FLOPs, memory."""
    params = num_parameters(cfg)
    tokens = batch * seq_len
    flops = training_flops(cfg, batch, seq_len)
    train, scores = flops["total"], flops["attention scores"]
    halved = training_flops(cfg, batch, seq_len, causal_halving=True)["total"]
    kv_token = kv_cache_bytes(cfg, 1, 1, dtype)
    activations = activation_bytes(cfg, batch, seq_len, dtype)["total"]
    name = normalize_dtype(dtype)
    lines = [
        f"{cfg.name}: {params['total']:,} parameters "
        f"({params['embeddings'] + params['output']:,} in the embeddings and output layer)",
        *([f"note: seq_len {seq_len:,} is longer than its context length "
           f"({cfg.context_length:,}); the formulas still apply"]
          if seq_len > cfg.context_length else []),
        f"training FLOPs per token at seq_len {seq_len}: {train / tokens:.4g} "
        f"(6 N = {6 * params['total']:.4g})",
        f"  attention scores: {scores / train:.1%} of the total; {halved / tokens:.4g} per token "
        "with causal halving",
        f"attention scores cost as much as the MLP at seq_len {attention_crossover(cfg):,.0f}",
        f"KV cache in {name}: {kv_token:,} bytes per token; "
        f"{kv_cache_bytes(cfg, batch, seq_len, dtype) / GB:.3g} GB for {batch} x {seq_len} tokens",
        f"activations saved for backward in {name}: {activations / GB:.3g} GB for {batch} x "
        f"{seq_len} tokens ({activations / tokens / 1e6:.3g} MB per token)",
    ]
    if gpu is not None:
        spec = _gpu_spec(gpu)
        fit = max_kv_cache_tokens(cfg, spec, dtype)
        weights = params["total"] * _element_bytes(dtype)
        where = f"on one {spec.name} ({spec.memory_bytes / GB:.0f} GB)"
        lines += ([f"{where}, the weights in {name} take {weights / GB:.3g} GB;",
                   f"  the rest holds the KV cache of {fit:,} tokens ({fit // seq_len:,} sequences "
                   f"of {seq_len})"] if fit else
                  [f"{where}: the weights alone ({weights / GB:.3g} GB in {name}) do not fit"])
    # Wrapped: a notebook's output area breaks a long line anywhere, even mid-word.
    return "\n".join(textwrap.fill(line, width=OUTPUT_WIDTH, subsequent_indent="  ")
                     for line in lines)


# ---------------------------------------------------------------------------------------------
# Measuring a training step, and the notebook's figures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepMeasurement:
    """One training step, measured: seconds (median and spread), tokens/s, MFU, peak bytes."""

    seconds: float
    seconds_min: float
    seconds_max: float
    tokens_per_second: float
    mfu: float | None  # None where no datasheet peak is known (a CPU)
    peak_bytes: int | None  # CUDA's max_memory_allocated; None elsewhere
    timing: Timing | None = None  # every timed step: printed as "12.3 ms (12.1-12.6)"


def measure_training_step(cfg: TransformerConfig, batch: int, seq_len: int,
                          device: torch.device | str, *, repeats: int = 10,
                          gpu: str | GPUSpec | None = None) -> StepMeasurement:
    """Time AdamW training steps (bf16 autocast on CUDA, fused attention) after a warm-up.

    On CUDA, MFU is against `gpu`'s datasheet (default: this GPU's; None if it is unknown).
    """
    _check_sizes(batch=batch, seq_len=seq_len, repeats=repeats)
    device = parse_device(str(device))
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = Transformer(cfg, fused_attention=True).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), device=device)
    targets = torch.randint(0, cfg.vocab_size, (batch, seq_len), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = language_model_loss(model, ids, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = measure_times(step, device=device, warmup=2, repeats=repeats, number=1)
    median = statistics.median(times)
    mfu = None
    if cuda:  # a CPU's time against a GPU's peak would mean nothing
        try:
            mfu = estimate_mfu(cfg, batch, seq_len, median, gpu=gpu, dtype="bf16")
        except UnknownGPUError:
            mfu = None
    return StepMeasurement(
        median, min(times), max(times), batch * seq_len / median, mfu,
        torch.cuda.max_memory_allocated(device) if cuda else None, Timing(tuple(times)))


def _check_list(name: str, values: object, example: str) -> None:
    """A non-empty list for a figure (a string would be read letter by letter)."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list such as {example}, got {values!r}")


def plain_log_ticks(*axes: Any) -> None:
    """Label log-scale axes with plain numbers (8,192, not 2^13): what a config file says."""
    for axis in axes:
        if not hasattr(axis, "set_major_formatter"):
            raise TypeError(f"axes must be matplotlib axes such as ax.xaxis or ax.yaxis, got "
                            f"{type(axis).__name__}")
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def plot_parameter_shares(names: list[str]) -> Any:
    """Horizontal stacked bars: each preset's parameters by part, as fractions of its total."""
    _check_list("names", names, "['gpt2-small', 'llama3-8b']")
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.6))
    parts = ["embeddings", "attention", "mlp", "output", "norms"]
    left = [0.0] * len(names)
    counts = [num_parameters(preset(n)) for n in names]
    for part in parts:
        shares = [c[part] / c["total"] for c in counts]
        ax.barh(names, shares, left=left, label=part)
        left = [a + b for a, b in zip(left, shares)]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of the parameters")
    ax.set_title("Where the parameters are")
    ax.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.tight_layout()
    return fig


def plot_flops_vs_context(cfg: TransformerConfig, seq_lens: list[int]) -> Any:
    """Stacked shares of training FLOPs by part against the sequence length (log scale)."""
    _check_list("seq_lens", seq_lens, "[256, 1024, 4096]")
    parts = ["attention projections", "mlp", "output", "attention scores"]
    flops = [training_flops(cfg, 1, t) for t in seq_lens]
    shares = [[f[part] / f["total"] for f in flops] for part in parts]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.stackplot(seq_lens, shares, labels=parts, alpha=0.85)
    crossover = attention_crossover(cfg)
    ax.axvline(cfg.context_length, color="black", ls="--", lw=1.5,
               label=f"its context length ({cfg.context_length:,})")
    ax.axvline(crossover, color="black", ls=":", lw=1.5,
               label=f"scores cost as much as the mlp ({crossover:,.0f})")
    ax.set_xscale("log", base=2)
    plain_log_ticks(ax.xaxis)
    ax.set_xlim(seq_lens[0], seq_lens[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("share of training FLOPs")
    ax.set_title(f"{cfg.name}: attention's t² term takes over at long contexts")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=10,
              frameon=False)
    fig.tight_layout()
    return fig


def plot_training_memory_vs_batch(cfg: TransformerConfig, seq_len: int, batches: list[int],
                                  gpu: str = "H100 SXM") -> Any:
    """Training memory (AdamW, mixed precision) by batch size, four ways to keep activations."""
    _check_list("batches", batches, "[1, 2, 4, 8]")
    spec = _gpu_spec(gpu)
    fig, ax = plt.subplots()
    for fused in (False, True):
        for ckpt in (False, True):
            label = (("fused attention" if fused else "written-out attention")
                     + (" + checkpointing" if ckpt else ""))
            totals = [training_memory(cfg, b, seq_len, checkpoint_blocks=ckpt,
                                      fused_attention=fused)["total"] for b in batches]
            ax.plot(batches, [t / GB for t in totals], "o-", label=label)
    state = training_memory(cfg, 1, seq_len)
    fixed = state["total"] - state["activations"]
    ax.axhline(fixed / GB, color="gray", ls=":", label="weights + gradients + AdamW state")
    ax.axhline(spec.memory_bytes / GB, color="black", ls="--", label=f"one {spec.name}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis, ax.yaxis)
    ax.set_xlabel(f"batch size (sequences of {seq_len:,} tokens)")
    ax.set_ylabel("training memory (GB)")
    ax.set_title(f"{cfg.name}: activations grow with the batch, the rest does not")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# "Check yourself" exercises of notebook 09
# ---------------------------------------------------------------------------------------------


def hint_table(*slips: tuple[float, str]) -> dict[float, str]:
    """{wrong answer: hint}, from (answer, hint) pairs; two slips that give the same answer get
    one hint naming both (a dict would silently keep only the last)."""
    table: dict[float, str] = {}
    for value, hint in slips:
        table[value] = (f"{table[value]} Or: {hint} (both slips give this count)"
                        if value in table else hint)
    return table


EXERCISES = Exercises("09")


def layer_parameters(cfg: TransformerConfig) -> int:
    """Parameters of one block: its attention, its MLP and its two norms."""
    one = num_parameters(_check_config(cfg).replace(num_layers=1))
    return one["attention"] + one["mlp"] + 2 * one["norms"] // 3  # of 3 norms, 1 is the final


@EXERCISES.checker(1, "parameters of one Llama 3 8B layer", wants="an int (parameters), exactly")
def _check_layer_parameters(answer: object) -> Feedback:
    cfg = preset("llama3-8b")
    expected, d = layer_parameters(cfg), cfg.d_model
    # Each hint is the count with one slip made. At Llama 3 8B's sizes, k and v as d x d and
    # GPT-2's d_ff = 4 d add the same 25,165,824 parameters: hint_table names both.
    return check_count(answer, expected, unit="parameters", hints=hint_table(
        (layer_parameters(cfg.replace(num_kv_heads=cfg.num_heads)),
         "k and v have num_kv_heads = 8 heads (grouped-query attention): each is d x 1024, not "
         "d x d."),
        (layer_parameters(cfg.replace(mlp="gelu")), "SwiGLU has three matrices (gate, up, down), "
                                                    "not two."),
        (layer_parameters(cfg.replace(d_ff=4 * d)), "Llama 3 8B's d_ff is 14,336 (3.5 d), not "
                                                    "GPT-2's 4 d."),
        (layer_parameters(cfg.replace(bias=True)), "Llama's Linear layers have no biases."),
        (expected - 2 * d, "add the two RMSNorm weights (d each)."),
        (expected + 2 * d, "RMSNorm has a weight but no bias: d parameters per norm, not 2 d."),
    ))


@EXERCISES.checker(2, "KV cache bytes per token, Llama 3 70B in bf16",
                   wants="an int (bytes per token), exactly")
def _check_kv_per_token(answer: object) -> Feedback:
    cfg = preset("llama3-70b")
    expected = kv_cache_bytes(cfg, 1, 1, torch.bfloat16)
    return check_count(answer, expected, unit="bytes", hints={
        expected / 2**10: "that is in KiB (2^10 bytes); the question asks for bytes.",
        kv_cache_bytes(cfg.replace(num_kv_heads=cfg.num_heads), 1, 1):
            "that is multi-head attention: Llama 3 caches 8 key/value heads, not 64.",
        kv_cache_bytes(cfg, 1, 1, torch.float32): "bf16 takes 2 bytes per number, not 4 "
                                                  "(float32).",
        kv_cache_bytes(cfg, 1, 1, torch.float64): "bf16 takes 2 bytes per number, not 8 "
                                                  "(float64).",
        kv_cache_bytes(cfg.replace(num_layers=1), 1, 1): "every layer has its own keys and "
                                                         "values: times 80 layers.",
        # Three slips give half: the keys alone, 1 byte per number, or numbers, not bytes.
        expected // 2: "half of it: cache the keys *and* the values, at 2 bytes per bf16 "
                       "number (this counts one of them, or numbers rather than bytes).",
    })


@EXERCISES.checker(3, "attention-score FLOPs of one Llama 3 8B forward pass, 8192 tokens",
                   wants=f"a number of FLOPs, {tolerance_text(DEFAULT_REL_TOL)}")
def _check_score_flops(answer: object) -> Feedback:
    cfg, t = preset("llama3-8b"), 8192
    expected = forward_flops(cfg, 1, t)["attention scores"]
    # Within 2%, the causal half t(t+1)/2 is half the full count: so are one of the two matmuls
    # and 1 FLOP per multiply-add. One hint names all three.
    half = ("half of it: count the full t x t matmuls (FlopCounterMode's convention, not the "
            "causal half), both of them (Q K^T and probs V), at 2 FLOPs per multiply-add.")
    return check_number(answer, expected, unit="FLOPs", hints={
        forward_flops(cfg, 1, t, causal_halving=True)["attention scores"]: half,
        expected / 2: half,
        expected * cfg.num_kv_heads / cfg.num_heads:
            "a quarter of it: every one of the 32 query heads computes its own t x t scores "
            "(grouped-query attention shares only K and V); or two of the halvings above.",
        training_flops(cfg, 1, t)["attention scores"]: "that is forward + backward (3x); the "
                                                       "question asks for the forward pass.",
        expected / cfg.num_layers: "1/32 of it: count every one of the 32 layers and the 32 "
                                   "query heads.",
        expected * cfg.num_heads: "each head multiplies t x head_dim (128) matrices, not "
                                  "t x d_model: the heads split d_model between them.",
    })


@EXERCISES.checker(4, "training FLOPs per token of GPT-2 small at 1024 tokens",
                   wants=f"a number of FLOPs per token, {tolerance_text(DEFAULT_REL_TOL)}")
def _check_flops_per_token(answer: object) -> Feedback:
    cfg, t = preset("gpt2-small"), 1024
    expected = training_flops(cfg, 1, t)["total"] / t
    # 6 N with N every parameter or only the matmul weights: 0.7% apart, one slip (no attention).
    # nanoGPT's N (all but the position embeddings) is within 0.1% of the answer: accepted.
    no_attention = ("that is 6 N alone: add attention's 12 x layers x seq_len x d_model FLOPs "
                    "per token (Q K^T and probs V have no weights, so 6 N misses them).")
    return check_number(answer, expected, unit="FLOPs per token", hints={
        six_n_t(cfg, 1, t) / t: no_attention,
        6 * matmul_parameters(cfg): no_attention,
        forward_flops(cfg, 1, t)["total"] / t: "that is the forward pass; training is forward "
                                               "+ backward (3x).",
        expected / 2: "half of it: a multiply-add is 2 FLOPs (6 per weight per token: 2 forward, "
                      "4 backward).",
    })


@EXERCISES.checker(5, "largest batch of 8192-token sequences, Llama 3 8B on one H200",
                   wants="an int (sequences), exactly")
def _check_max_batch(answer: object) -> Feedback:
    cfg, t = preset("llama3-8b"), 8192
    memory = lookup_gpu("H200").memory_bytes  # the datasheet's 141 GB, as 141e9 bytes
    weights = num_parameters(cfg)["total"] * _element_bytes(torch.bfloat16)
    per_sequence = kv_cache_bytes(cfg, 1, t, torch.bfloat16)
    exact = (memory - weights) / per_sequence
    expected = math.floor(exact)
    # Each slip, made in the same formula, before rounding down.
    slips = {
        (memory - weights) / kv_cache_bytes(cfg.replace(num_kv_heads=cfg.num_heads), 1, t):
            "Llama 3 has 8 key/value heads, not 32.",
        (memory - 2 * weights) / (2 * per_sequence): "weights and cache in bf16: 2 bytes per "
                                                     "number, not 4.",
        (141 * 2**30 - weights) / per_sequence: "the course reads the datasheet's 141 GB as "
                                                "141e9 bytes, not 141 GiB.",
        memory / per_sequence: "the weights take memory too (2 bytes each).",
    }
    slips = {math.floor(value): hint for value, hint in slips.items()}
    value = as_number(answer, "sequences")
    if isinstance(value, Feedback):
        return value
    if value != math.floor(value):  # a fraction of a sequence: which slip, before rounding?
        if math.floor(value) == expected:
            return wrong("round down to whole sequences: a sequence's cache fits or it does not.")
        if math.floor(value) in slips:
            return wrong(f"{slips[math.floor(value)]} And round down to whole sequences.")
    rounded_up = {math.ceil(exact): "round down: the last of these sequences' caches does not "
                                    "fit."}
    return check_count(value, expected, hints={**slips, **rounded_up}, unit="sequences")
