"""Every accounting formula of notebook 09 against a measurement, and the model's bad inputs."""

import math

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
    Transformer,
    TransformerConfig,
    activation_bytes,
    attention_crossover,
    describe,
    estimate_mfu,
    forward_flops,
    generate,
    kv_cache_bytes,
    language_model_loss,
    matmul_parameters,
    max_kv_cache_tokens,
    measure_training_step,
    num_parameters,
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


def test_exercises_accept_the_answers_and_name_the_mistakes():
    cfg = preset("llama3-8b")
    d = cfg.d_model
    layer = 2 * d * d + 2 * d * 1024 + 3 * d * cfg.d_ff + 2 * d
    answers = {1: layer, 2: 327_680, 3: 4 * 32 * 8192**2 * 128 * 32,
               4: 6 * matmul_parameters(preset("gpt2-small")) + 12 * 12 * 1024 * 768,
               5: max_kv_cache_tokens(cfg, "H200") // 8192}
    for number, answer in answers.items():
        assert EXERCISES.feedback(number, answer).correct is True, number
    assert "three matrices" in EXERCISES.feedback(1, layer - d * cfg.d_ff).message
    assert "8 key/value heads" in EXERCISES.feedback(2, 8 * 327_680).message
    assert "causal half" in EXERCISES.feedback(
        3, forward_flops(cfg, 1, 8192, causal_halving=True)["attention scores"]).message
    assert "6 N" in EXERCISES.feedback(4, 6 * 124_439_808).message
    assert EXERCISES.feedback(5, None).correct is None


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


def test_exercise_hints_for_near_misses():
    cfg = preset("llama3-8b")
    d, f = cfg.d_model, cfg.d_ff
    layer = 2 * d * d + 2 * d * 1024 + 3 * d * f + 2 * d
    assert "RMSNorm weights" in EXERCISES.feedback(1, layer - 2 * d).message
    assert "no bias" in EXERCISES.feedback(1, layer + 2 * d).message
    full = forward_flops(cfg, 1, 8192)["attention scores"]
    assert "both matmuls" in EXERCISES.feedback(3, full // 2).message
    gpt2 = preset("gpt2-small")
    nanogpt = 6 * (124_439_808 - 1024 * 768) + 12 * 12 * 1024 * 768
    assert "nanoGPT" in EXERCISES.feedback(4, nanogpt).message
    exact = (141e9 - 2 * 8_030_261_248) / kv_cache_bytes(cfg, 1, 8192)
    assert "round down" in EXERCISES.feedback(5, exact).message
    assert "KiB" in EXERCISES.feedback(2, 320).message
    assert EXERCISES.feedback(4, 6 * matmul_parameters(gpt2) + 12 * 12 * 1024 * 768).correct
