"""Every accounting formula of notebook 09 against a measurement, and the model's bad inputs."""

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils import napkin
from lecture_utils.hardware import GB, GPUS, UnknownGPUError
from lecture_utils.mixed_precision import saved_for_backward
from lecture_utils.transformer import (
    EXERCISES,
    LOGSUMEXP_BYTES,
    NORM_STATS_BYTES,
    NORMS,
    POSITIONS,
    PRESETS,
    KVCache,
    Linear,
    Transformer,
    TransformerConfig,
    activation_bytes,
    attention_crossover,
    check_count,
    describe,
    estimate_mfu,
    forward_flops,
    generate,
    kv_cache_bytes,
    language_model_loss,
    layer_parameters,
    matmul_parameters,
    max_kv_cache_tokens,
    measure_training_step,
    num_parameters,
    plot_flops_vs_context,
    plot_parameter_shares,
    plot_training_memory_vs_batch,
    preset,
    six_n_t,
    training_flops,
    training_memory,
)

GPT2_TINY = TransformerConfig(
    vocab_size=97, context_length=32, d_model=48, num_layers=2, num_heads=4, num_kv_heads=4,
    d_ff=192, norm="layernorm", mlp="gelu", positions="learned", bias=True,
    tied_embeddings=True, name="gpt2-tiny")
LLAMA_TINY = TransformerConfig(
    vocab_size=97, context_length=32, d_model=48, num_layers=2, num_heads=6, num_kv_heads=2,
    d_ff=128, name="llama-tiny")
TINY = {
    "gpt2": GPT2_TINY,
    "llama-gqa": LLAMA_TINY,
    "llama-mha": LLAMA_TINY.replace(num_kv_heads=6),
    "llama-mqa": LLAMA_TINY.replace(num_kv_heads=1),
}


def meta_model(cfg, **kwargs):
    with torch.device("meta"):
        return Transformer(cfg, **kwargs)


def tokens(cfg, batch, seq_len, seed=0, device="cpu"):
    """Ids and next-token targets: two separate tensors, as a data loader gives them."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (batch, seq_len), generator=g)
    return ids.to(device), targets.to(device)


def measured_activation_bytes(model, ids, targets):
    state = list(model.parameters()) + list(model.buffers())
    return saved_for_backward(lambda: language_model_loss(model, ids, targets), state)


UNUSUAL = {
    f"{norm}-{mlp}-{positions}-bias{int(bias)}-tied{int(tied)}-kv{kv}": LLAMA_TINY.replace(
        norm=norm, mlp=mlp, positions=positions, bias=bias, tied_embeddings=tied, num_kv_heads=kv)
    for norm in NORMS for mlp in ("gelu", "swiglu") for positions in POSITIONS
    for bias in (False, True) for tied in (False, True) for kv in (1, 6)
}


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_every_combination_of_parts_is_counted_exactly(name):
    cfg = UNUSUAL[name]
    model = Transformer(cfg)
    assert num_parameters(cfg)["total"] == sum(p.numel() for p in model.parameters())
    ids, targets = tokens(cfg, 2, 9)
    with FlopCounterMode(display=False) as counter:
        language_model_loss(model, ids, targets).backward()
    assert counter.get_total_flops() == training_flops(cfg, 2, 9)["total"]
    measured = measured_activation_bytes(model, ids, targets).activation_bytes
    assert measured == activation_bytes(cfg, 2, 9, torch.float32)["total"]


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameters_match_the_module_and_the_published_count(name):
    cfg = PRESETS[name].config
    model = meta_model(cfg)
    counted = sum(p.numel() for p in model.parameters())  # a tied matrix is counted once
    assert num_parameters(cfg)["total"] == counted == PRESETS[name].published_parameters


@pytest.mark.parametrize("kind", sorted(TINY))
def test_parameter_breakdown_matches_the_submodules(kind):
    cfg = TINY[kind]
    model = Transformer(cfg)
    parts = num_parameters(cfg)
    size = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    assert parts["attention"] == size(b.attn for b in model.blocks)
    assert parts["mlp"] == size(b.mlp for b in model.blocks)
    norms = [b.attn_norm for b in model.blocks] + [b.mlp_norm for b in model.blocks]
    assert parts["norms"] == size(norms + [model.final_norm])
    assert parts["output"] == (0 if cfg.tied_embeddings else model.output.weight.numel())


def test_matmul_parameters_leave_out_lookups_norms_and_biases():
    cfg = preset("gpt2-small")
    n = num_parameters(cfg)
    biases = cfg.num_layers * (4 * cfg.d_model + cfg.d_ff + cfg.d_model)
    positions = cfg.context_length * cfg.d_model
    assert matmul_parameters(cfg) == n["total"] - n["norms"] - biases - positions


# --- FLOPs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_forward_flops_equal_flop_counter_at_full_size(name):
    cfg = PRESETS[name].config
    model = meta_model(cfg)
    ids = torch.zeros(1, cfg.context_length, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(ids)
    assert counter.get_total_flops() == forward_flops(cfg, 1, cfg.context_length)["total"]


@pytest.mark.parametrize("name", ["gpt2-small", "llama3-8b"])
def test_training_flops_equal_flop_counter_at_full_size(name):
    cfg = PRESETS[name].config
    model = meta_model(cfg)
    ids = torch.zeros(2, 512, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        language_model_loss(model, ids, ids).backward()
    assert counter.get_total_flops() == training_flops(cfg, 2, 512)["total"]


@pytest.mark.parametrize("kind", sorted(TINY))
def test_flops_parts_on_small_real_tensors(kind):
    cfg = TINY[kind]
    model = Transformer(cfg)
    ids, targets = tokens(cfg, 3, 11)
    with FlopCounterMode(display=False) as counter:
        language_model_loss(model, ids, targets).backward()
    assert counter.get_total_flops() == training_flops(cfg, 3, 11)["total"]


def test_causal_halving_counts_the_lower_triangle():
    cfg = preset("llama3-8b")
    full = forward_flops(cfg, 2, 1000)
    halved = forward_flops(cfg, 2, 1000, causal_halving=True)
    assert halved["attention scores"] * 2 * 1000 == full["attention scores"] * 1001
    assert {k: v for k, v in halved.items() if k not in ("attention scores", "total")} == {
        k: v for k, v in full.items() if k not in ("attention scores", "total")}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_attention_crossover_is_where_scores_equal_the_mlp(name):
    cfg = PRESETS[name].config
    for halving in (False, True):
        seq_len = attention_crossover(cfg, causal_halving=halving)
        assert seq_len == int(seq_len)
        flops = forward_flops(cfg, 1, int(seq_len), causal_halving=halving)
        assert flops["attention scores"] == flops["mlp"]


def test_six_n_t_and_the_exact_count_per_token():
    cfg = preset("gpt2-small")
    assert six_n_t(cfg, 1, 1024) == 6 * 124_439_808 * 1024
    per_token = training_flops(cfg, 1, 1024)["total"] / 1024
    expected = 6 * matmul_parameters(cfg) + 12 * cfg.num_layers * 1024 * cfg.d_model
    assert per_token == expected  # PaLM's and nanoGPT's 6 N + 12 L T d, with the right N


# --- activation memory -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TINY))
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("batch,seq_len", [(1, 7), (3, 16)])
def test_activation_bytes_equal_autograd_saved_tensors(kind, fused, checkpoint, batch, seq_len):
    cfg = TINY[kind]
    model = Transformer(cfg, fused_attention=fused, checkpoint_blocks=checkpoint)
    ids, targets = tokens(cfg, batch, seq_len)
    measured = measured_activation_bytes(model, ids, targets).activation_bytes
    predicted = activation_bytes(cfg, batch, seq_len, torch.float32, fused_attention=fused,
                                 checkpoint_blocks=checkpoint)
    # With checkpointing, the forward pass holds everything but the block recomputed later.
    held = predicted["total"] - predicted.get("one block, recomputed in backward", 0)
    assert measured == held


@pytest.mark.parametrize("fused", [False, True])
def test_activation_bytes_in_bfloat16(fused):
    # RMSNorm models: exact. LayerNorm on a CPU keeps its statistics in bf16 (2 bytes), where a
    # GPU (and the formula) keeps them in float32: the difference is exactly that.
    for cfg in (LLAMA_TINY, GPT2_TINY):
        model = Transformer(cfg, fused_attention=fused).to(torch.bfloat16)
        ids, targets = tokens(cfg, 2, 9)
        measured = measured_activation_bytes(model, ids, targets).activation_bytes
        predicted = activation_bytes(cfg, 2, 9, "bf16", fused_attention=fused)["total"]
        norms = 2 * cfg.num_layers + 1
        explained = norms * 2 * (2 * 9) * (NORM_STATS_BYTES - 2) if cfg.norm == "layernorm" else 0
        assert predicted - measured == explained


def test_fused_attention_keeps_a_log_sum_exp_instead_of_the_scores():
    cfg = preset("llama3-8b")
    naive = activation_bytes(cfg, 1, 8192, "bf16")
    fused = activation_bytes(cfg, 1, 8192, "bf16", fused_attention=True)
    saved = (naive["softmax output (for probs V)"] + naive["causal mask"]
             - cfg.num_layers * cfg.num_heads * 8192 * LOGSUMEXP_BYTES)
    assert naive["total"] - fused["total"] == saved


def test_fused_and_checkpointed_models_compute_the_same_thing():
    torch.manual_seed(0)
    plain = Transformer(LLAMA_TINY)
    other = Transformer(LLAMA_TINY, fused_attention=True, checkpoint_blocks=True)
    other.load_state_dict(plain.state_dict())
    ids, targets = tokens(LLAMA_TINY, 2, 12)
    losses = [language_model_loss(m, ids, targets) for m in (plain, other)]
    for loss in losses:
        loss.backward()
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    for a, b in zip(plain.parameters(), other.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


# --- KV cache and generation -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TINY))
def test_kv_cache_bytes_equal_the_cache_tensors(kind):
    cfg = TINY[kind]
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    prompt, _ = tokens(cfg, 2, 5)
    cached, cache = generate(model, prompt, 9)
    recomputed, _ = generate(model, prompt, 9, use_cache=False)
    assert torch.equal(cached, recomputed)
    assert cache.length == 5 + 9 - 1  # the last token is generated, never fed back
    assert cache.nbytes() == kv_cache_bytes(cfg, 2, cache.length, torch.float32)


def test_fused_generation_matches_and_the_cache_saves_flops():
    torch.manual_seed(0)
    model = Transformer(LLAMA_TINY).eval()
    fused = Transformer(LLAMA_TINY, fused_attention=True).eval()
    fused.load_state_dict(model.state_dict())
    prompt, _ = tokens(LLAMA_TINY, 1, 6)
    assert torch.equal(generate(model, prompt, 8)[0], generate(fused, prompt, 8)[0])
    flops = {}
    for use_cache in (True, False):
        with FlopCounterMode(display=False) as counter:
            generate(model, prompt, 8, use_cache=use_cache)
        flops[use_cache] = counter.get_total_flops()
    # With the cache, step i processes 1 token against 6 + i keys; without, all 6 + i tokens.
    per_token = forward_flops(LLAMA_TINY, 1, 1)["total"] - forward_flops(
        LLAMA_TINY, 1, 1)["attention scores"]
    scores = lambda t, s: 4 * LLAMA_TINY.num_layers * LLAMA_TINY.d_model * t * s  # noqa: E731
    cached = forward_flops(LLAMA_TINY, 1, 6)["total"] + sum(
        per_token + scores(1, 6 + i + 1) for i in range(7))
    assert flops[True] == cached
    assert flops[False] == sum(forward_flops(LLAMA_TINY, 1, 6 + i)["total"] for i in range(8))


def test_cache_and_context_overflow_are_refused():
    model = Transformer(LLAMA_TINY).eval()
    cache = KVCache(LLAMA_TINY, 1, 4)
    with pytest.raises(ValueError, match="holds 4 tokens; 5 needed"):
        model(torch.zeros(1, 5, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="exceed context_length=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


# --- memory planning and MFU -----------------------------------------------------------------


def test_kv_cache_per_token_of_real_models():
    assert kv_cache_bytes(preset("llama3-8b"), 1, 1, "bf16") == 2 * 32 * 8 * 128 * 2 == 131_072
    assert kv_cache_bytes(preset("llama2-7b"), 1, 1, torch.bfloat16) == 4 * 131_072
    assert kv_cache_bytes(preset("llama3-70b"), 1, 1) == 327_680


def test_max_kv_cache_tokens():
    cfg = preset("llama3-8b")
    free = 80 * GB - 2 * 8_030_261_248
    assert max_kv_cache_tokens(cfg, "H100 SXM") == int(free // 131_072) == 487_819
    assert max_kv_cache_tokens(preset("llama3-70b"), "H100 SXM") == 0  # 141 GB of weights
    assert max_kv_cache_tokens(cfg, GPUS["H200"]) > max_kv_cache_tokens(cfg, "H100 SXM")


def test_training_memory_uses_notebook_00_bytes_per_parameter():
    cfg = preset("gpt2-small")
    memory = training_memory(cfg, 4, 1024)  # AdamW, mixed precision
    per_param = napkin.bytes_per_parameter("adamw", "mixed")
    assert memory["weights"] + memory["gradients"] + memory["optimizer state"] == (
        per_param.total * 124_439_808)
    assert memory["activations"] == activation_bytes(cfg, 4, 1024, torch.bfloat16)["total"]
    checkpointed = training_memory(cfg, 4, 1024, checkpoint_blocks=True)
    assert checkpointed["activations"] == activation_bytes(
        cfg, 4, 1024, "bf16", checkpoint_blocks=True)["total"] < memory["activations"] / 4


def test_estimate_mfu_uses_the_dense_peak_and_refuses_a_guess():
    cfg = preset("gpt2-small")
    flops = training_flops(cfg, 8, 1024)["total"]
    assert math.isclose(estimate_mfu(cfg, 8, 1024, 0.5, gpu="A100 80GB"), flops / 0.5 / 312e12)
    assert math.isclose(estimate_mfu(cfg, 8, 1024, 0.5, gpu="H100 SXM", num_gpus=2),
                        flops / 0.5 / 989.4e12 / 2)
    if not torch.cuda.is_available():
        with pytest.raises(UnknownGPUError, match="no datasheet for this machine"):
            estimate_mfu(cfg, 8, 1024, 0.5)
    for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="step_seconds"):
            estimate_mfu(cfg, 8, 1024, bad, gpu="H100 SXM")
    with pytest.raises(UnknownGPUError, match="no datasheet entry"):
        estimate_mfu(cfg, 8, 1024, 0.5, gpu="X9000")


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,error,message", [
    ({"num_heads": 5}, ValueError, r"num_heads=5 must divide d_model=48.*nearest that does: 4"),
    ({"num_kv_heads": 4}, ValueError, "num_kv_heads=4 must divide num_heads=6"),
    ({"d_model": 0}, ValueError, "d_model must be positive"),
    ({"num_layers": -1}, ValueError, "num_layers must be positive"),
    ({"vocab_size": 9.5}, TypeError, "vocab_size must be an int"),
    ({"d_ff": True}, TypeError, "d_ff must be an int"),
    ({"norm": "batchnorm"}, ValueError, "norm must be one of"),
    ({"mlp": "relu"}, ValueError, "mlp must be one of"),
    ({"positions": "alibi"}, ValueError, "positions must be one of"),
    ({"d_model": 42, "num_heads": 6, "num_kv_heads": 6}, ValueError, "head_dim=7 must be even"),
    ({"rope_theta": 0}, ValueError, "rope_theta must be a number > 1"),
    ({"rope_theta": float("inf")}, ValueError, "rope_theta must be a number > 1"),
    ({"bias": "no"}, TypeError, "bias must be True or False"),
    ({"tied_embeddings": 1}, TypeError, "tied_embeddings must be True or False"),
])
def test_bad_configs_are_named(changes, error, message):
    with pytest.raises(error, match=message):
        LLAMA_TINY.replace(**changes)


@pytest.mark.parametrize("call,error,message", [
    (lambda: kv_cache_bytes(LLAMA_TINY, 1, 1, torch.int64), ValueError, "not a floating-point"),
    (lambda: kv_cache_bytes(LLAMA_TINY, 1, 1, "int8"), ValueError, "not a floating-point"),
    (lambda: kv_cache_bytes(LLAMA_TINY, 1, 1, "fp12"), ValueError, "unknown dtype name"),
    (lambda: kv_cache_bytes(LLAMA_TINY, 1, 1, 2), TypeError, "expected a torch.dtype"),
    (lambda: activation_bytes(LLAMA_TINY, 0, 8), ValueError, "batch must be positive"),
    (lambda: forward_flops(LLAMA_TINY, 1, 2.5), TypeError, "seq_len must be an int"),
    (lambda: num_parameters("llama3-8b"), TypeError, "cfg must be a TransformerConfig"),
    (lambda: preset("llama4"), ValueError, "unknown preset 'llama4'"),
    (lambda: Transformer({"d_model": 4}), TypeError, "cfg must be a TransformerConfig"),
    (lambda: Transformer(LLAMA_TINY, fused_attention="no"), TypeError, "fused_attention must be"),
    (lambda: forward_flops(LLAMA_TINY, 1, 8, causal_halving="yes"), TypeError, "causal_halving"),
    (lambda: attention_crossover(LLAMA_TINY, causal_halving=1), TypeError, "causal_halving"),
    (lambda: activation_bytes(LLAMA_TINY, 1, 8, checkpoint_blocks=None), TypeError,
     "checkpoint_blocks"),
    (lambda: preset(["llama3-8b"]), TypeError, "preset name must be a string"),
    (lambda: KVCache(LLAMA_TINY, 0, 8), ValueError, "batch must be positive"),
    (lambda: measure_training_step(LLAMA_TINY, 1, 8, "gpu"), ValueError, "is not a device"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- command line and exercises --------------------------------------------------------------


def test_command_line(capsys):
    napkin.main(["transformer", "--preset", "llama3-8b", "--seq-len", "8192", "--gpu", "H100 SXM"])
    out = capsys.readouterr().out
    assert "8,030,261,248 parameters" in out and "131,072 bytes per token" in out
    assert "487,819 tokens (59 sequences of 8192)" in out
    assert out == describe(preset("llama3-8b"), 1, 8192, gpu="H100 SXM") + "\n"
    with pytest.raises(SystemExit):
        napkin.main(["transformer", "--preset", "llama3-8b", "--seq-len", "0"])
    assert "seq_len must be positive" in capsys.readouterr().err


def test_bad_token_ids_and_generation_arguments_are_named():
    model = Transformer(LLAMA_TINY)
    for ids, error, message in [
        (torch.zeros(5, dtype=torch.long), TypeError, "a 1-d torch.int64 tensor"),
        (torch.zeros(1, 4), TypeError, "integer tensor"),
        ([[1, 2]], TypeError, "integer tensor of token ids"),
        (torch.zeros(1, 0, dtype=torch.long), ValueError, "at least one token"),
        (torch.tensor([[1, 97]]), ValueError, r"in \[0, 97\)"),
    ]:
        with pytest.raises(error, match=message):
            model(ids)
    prompt = torch.zeros(1, 3, dtype=torch.long)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="new_tokens must be positive"):
            generate(model, prompt, bad)
    with pytest.raises(TypeError, match="new_tokens must be an int"):
        generate(model, prompt, 2.5)
    with pytest.raises(ValueError, match="made for a batch of 2"):
        model(prompt, KVCache(LLAMA_TINY, 2, 8))


def test_checkpointed_model_still_fills_its_cache_with_gradients_on():
    model = Transformer(LLAMA_TINY, checkpoint_blocks=True)
    cache = KVCache(LLAMA_TINY, 1, 8)
    model(torch.zeros(1, 3, dtype=torch.long), cache)
    model(torch.zeros(1, 1, dtype=torch.long), cache)
    assert cache.length == 4 and cache.keys[0][:, :4].abs().sum() > 0


def test_rmsnorm_has_no_bias_even_when_the_linears_do():
    cfg = LLAMA_TINY.replace(bias=True)
    assert num_parameters(cfg)["norms"] == (2 * cfg.num_layers + 1) * cfg.d_model


def test_measure_training_step_on_the_cpu():
    step = measure_training_step(LLAMA_TINY, 2, 8, "cpu", repeats=2, gpu="H100 SXM")
    assert step.seconds_min <= step.seconds <= step.seconds_max
    assert step.timing.median == step.seconds and len(step.timing.times) == 2
    assert step.tokens_per_second == 16 / step.seconds
    assert step.mfu is None and step.peak_bytes is None  # no CPU time against a GPU's peak
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            measure_training_step(LLAMA_TINY, 2, 8, "cuda")


def test_an_mfu_above_one_is_refused():
    with pytest.raises(ValueError, match="above the peak.*milliseconds"):
        estimate_mfu(preset("gpt2-small"), 8, 1024, 1e-6, gpu="H100 SXM")


def test_describe_says_when_the_weights_do_not_fit():
    text = describe(preset("llama3-70b"), 1, 8192, gpu="H100 SXM")
    assert "the weights alone (141 GB in bf16) do not fit" in text


def test_the_presets_ratios_the_notebook_quotes():
    assert round(preset("llama2-7b").d_ff / 4096, 1) == 2.7  # "width 2.7 d (Llama 2)"
    assert preset("llama3-8b").d_ff == 3.5 * 4096  # "or 3.5 d (3)"


def test_describe_fits_a_notebook_line():
    for name in PRESETS:
        for gpu in (None, "H100 SXM", "H200"):
            lines = describe(preset(name), 2, 100_000, gpu=gpu).splitlines()
            assert all(len(line) <= 100 for line in lines), lines


def test_linear_draws_no_values_on_meta_and_initializes_like_nn_linear():
    with torch.device("meta"):
        Linear(8, 4)  # nothing to draw: no error, no time
    torch.manual_seed(0)
    ours = Linear(8, 4)
    torch.manual_seed(0)
    theirs = torch.nn.Linear(8, 4)
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


# --- exercises: each hint comes from its mistake, made in full -----------------------------------

UNANSWERED_WORDS = "not answered yet"


def verdict(number, answer):
    return EXERCISES.feedback(number, answer)


@pytest.mark.parametrize("number", sorted(EXERCISES.exercises))
def test_exercises_say_what_they_want_and_name_junk(number):
    exercise = EXERCISES.exercises[number]
    assert exercise.wants and ("exactly" in exercise.wants or "within 2%" in exercise.wants)
    assert UNANSWERED_WORDS in verdict(number, None).message and verdict(number, None).correct is None
    assert "nan" in verdict(number, float("nan")).message
    assert "text" in verdict(number, "1e9").message
    assert "infinity" in verdict(number, float("inf")).message or "finite" in verdict(
        number, float("inf")).message


def test_check_count_matches_exactly_and_says_close_is_not_enough():
    hints = {98: "two short", 102: "two over"}
    assert check_count(100, 100, hints=hints).correct is True
    assert check_count(98, 100, hints=hints).message.endswith("two short")
    assert check_count(102, 100, hints=hints).message.endswith("two over")
    assert "must be exact" in check_count(101, 100, hints=hints).message  # no hint within 0.1%
    assert "10^3" in check_count(100_000, 100, hints=hints).message
    assert check_count(None, 100).correct is None


def test_exercise_1_layer_parameters():
    cfg = preset("llama3-8b")
    block = meta_model(cfg.replace(num_layers=1)).blocks[0]
    right = sum(p.numel() for p in block.parameters())  # the module itself
    assert right == layer_parameters(cfg) == 218_112_000
    assert verdict(1, right).correct is True
    d, kv, f = cfg.d_model, cfg.kv_dim, cfg.d_ff
    mistakes = {
        "num_kv_heads = 8": 4 * d * d + 3 * d * f + 2 * d,  # k and v counted d x d
        "three matrices": 2 * d * d + 2 * d * kv + 2 * d * f + 2 * d,  # a GELU MLP's two
        "14,336": 2 * d * d + 2 * d * kv + 3 * d * (4 * d) + 2 * d,  # GPT-2's 4 d
        "no biases": right + 3 * d + 2 * kv + 2 * f,  # q, o, w2; k, v; w1, w3
        "add the two RMSNorm weights": right - sum(p.numel() for p in block.attn_norm.parameters())
                                      - sum(p.numel() for p in block.mlp_norm.parameters()),
        "no bias: d parameters per norm": right + 2 * sum(
            p.numel() for p in torch.nn.LayerNorm(d, device="meta").parameters()) - 2 * d,
    }
    for words, answer in mistakes.items():
        assert words in verdict(1, answer).message, (words, verdict(1, answer))
    assert "must be exact" in verdict(1, 2.18e8).message  # 3 figures are not a count


def test_exercise_2_kv_cache_bytes_per_token():
    cfg = preset("llama3-70b")
    cache = KVCache(cfg.replace(num_layers=80), 1, 1, torch.bfloat16, device="meta")
    right = sum(t.numel() * t.element_size() for t in cache.keys + cache.values)  # the tensors
    assert right == 327_680 and verdict(2, right).correct is True
    per_layer = 2 * cfg.kv_dim * 2  # keys and values of one layer, bf16
    mistakes = {
        "KiB": right / 1024,
        "8 key/value heads, not 64": 2 * 80 * 64 * 128 * 2,
        "not 4 (float32)": 2 * 80 * 8 * 128 * torch.finfo(torch.float32).bits // 8,
        "not 8 (float64)": 2 * 80 * 8 * 128 * torch.finfo(torch.float64).bits // 8,
        "times 80 layers": per_layer,
        "keys *and* the values": 80 * 8 * 128 * 2,  # the keys alone
    }
    for words, answer in mistakes.items():
        assert words in verdict(2, answer).message, (words, verdict(2, answer))
    numbers_not_bytes = 2 * 80 * 8 * 128
    assert "keys *and* the values" in verdict(2, numbers_not_bytes).message


def test_exercise_3_attention_score_flops():
    cfg, t = preset("llama3-8b"), 8192
    one_matmul = 2 * t * t * cfg.head_dim  # per head: Q K^T (and as much for probs V)
    right = cfg.num_layers * cfg.num_heads * 2 * one_matmul
    assert verdict(3, right).correct is True
    assert verdict(3, float(f"{right:.3g}")).correct is True  # 3 significant figures
    mistakes = {
        "causal half": cfg.num_layers * cfg.num_heads * 2 * 2 * (t * (t + 1) // 2) * cfg.head_dim,
        "both of them": cfg.num_layers * cfg.num_heads * one_matmul,
        "2 FLOPs per multiply-add": cfg.num_layers * cfg.num_heads * 2 * one_matmul // 2,
        "32 query heads": cfg.num_layers * cfg.num_kv_heads * 2 * one_matmul,
        "forward + backward": 3 * right,
        "32 layers": cfg.num_heads * 2 * one_matmul,
        "t x head_dim (128)": cfg.num_layers * cfg.num_heads * 2 * 2 * t * t * cfg.d_model,
    }
    for words, answer in mistakes.items():
        assert words in verdict(3, answer).message, (words, verdict(3, answer))


def test_exercise_4_training_flops_per_token():
    cfg, t = preset("gpt2-small"), 1024
    with torch.device("meta"):
        model = Transformer(cfg)
    ids = torch.zeros(1, t, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        language_model_loss(model, ids, ids).backward()
    right = counter.get_total_flops() / t  # measured
    assert verdict(4, right).correct is True
    assert verdict(4, float(f"{right:.3g}")).correct is True
    everything_but_positions = 124_439_808 - t * cfg.d_model  # nanoGPT's N: within 0.1%
    assert verdict(4, 6 * everything_but_positions + 12 * 12 * t * 768).correct is True
    matmul_weights = sum(p.numel() for n, p in model.named_parameters()
                         if p.dim() == 2 and "position" not in n)  # tied output counted once
    mistakes = {
        "6 N alone": [6 * 124_439_808, 6 * matmul_weights],
        "forward pass": [right / 3],
        "multiply-add is 2 FLOPs": [right / 2],
    }
    for words, answers in mistakes.items():
        for answer in answers:
            assert words in verdict(4, answer).message, (words, verdict(4, answer))


def test_exercise_5_sequences_that_fit():
    cfg, t = preset("llama3-8b"), 8192
    right = max_kv_cache_tokens(cfg, "H200") // t
    assert right == 116 and verdict(5, right).correct is True
    weights, per_sequence = 2 * 8_030_261_248, kv_cache_bytes(cfg, 1, t)
    mistakes = {
        "8 key/value heads, not 32": (141e9 - weights) // (4 * per_sequence),
        "2 bytes per number, not 4": max_kv_cache_tokens(cfg, "H200", torch.float32) // t,
        "not 141 GiB": (141 * 2**30 - weights) // per_sequence,
        "the weights take memory too": 141e9 // per_sequence,
        "last of these sequences": right + 1,
    }
    for words, answer in mistakes.items():
        assert words in verdict(5, answer).message, (words, verdict(5, answer))
    assert "round down" in verdict(5, (141e9 - weights) / per_sequence).message
    unrounded_no_weights = 141e9 / per_sequence
    message = verdict(5, unrounded_no_weights).message
    assert "the weights take memory too" in message and "round down" in message


def test_the_stubs_of_the_student_copy_are_not_answered_yet():
    from course_tools.course import strip_solution

    path = Path(__file__).resolve().parent.parent / "notebooks/09_transformer_accounting.ipynb"
    cells = json.loads(path.read_text())["cells"]
    stubs = ["".join(c["source"]) for c in cells if "solution" in c["metadata"].get("tags", [])]
    namespace: dict = {}
    for stub in stubs:
        exec(strip_solution(stub), namespace)  # noqa: S102 (the course's own cells)
    for number in EXERCISES.exercises:
        assert verdict(number, namespace[f"answer_{number}"]).correct is None, number


# --- figures ---------------------------------------------------------------------------------


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def test_plot_parameter_shares_stacks_every_part(close_figures):
    fig = plot_parameter_shares(["gpt2-small", "llama3-8b"])
    ax = fig.axes[0]
    assert len(ax.patches) == 5 * 2  # five parts, one bar per model
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "embeddings", "attention", "mlp", "output", "norms"]


def test_plot_flops_vs_context_marks_the_context_and_the_crossover(close_figures):
    cfg = preset("llama3-8b")
    fig = plot_flops_vs_context(cfg, [2**k for k in range(7, 18)])
    ax = fig.axes[0]
    assert len(ax.collections) == 4  # the four stacked parts
    assert sorted(line.get_xdata()[0] for line in ax.lines) == [8192, 21_504]
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "8,192" in labels and not any("^" in label for label in labels)  # plain numbers


def test_plot_training_memory_vs_batch_draws_four_ways_and_two_limits(close_figures):
    fig = plot_training_memory_vs_batch(preset("gpt2-small"), 1024, [1, 2, 4])
    ax = fig.axes[0]
    assert len(ax.lines) == 4 + 2  # four ways to keep activations; the fixed state; the GPU
    assert ax.lines[-1].get_ydata()[0] == GPUS["H100 SXM"].memory_bytes / GB
