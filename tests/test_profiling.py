"""Notebook 10's instruments: every reconciliation exact, every bad input named."""

import itertools
import json
import math
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torch.profiler import record_function

from lecture_utils import profiling
from lecture_utils.models import Cruncher
from lecture_utils.optimizers import make_optimizer, predict_peak_training_memory, train_step
from lecture_utils.profiling import (
    CATEGORIES,
    EXERCISES,
    MatmulTiming,
    allocated_over_time,
    by_category,
    cpu_sized,
    cruncher_step_flops,
    cuda_memory_snapshot,
    export_trace,
    find_operator,
    format_matmul_timing,
    format_operator_table,
    format_reconciliation,
    growth_per_call,
    launch_vs_kernel,
    live_bytes_after_each_call,
    memory_after_each_call,
    memory_at_backward_start,
    memory_by_phase,
    operator_stats,
    overhead_crossover,
    overhead_summary,
    parameter_tensors,
    plot_allocated_over_time,
    plot_matmul_overhead,
    plot_memory_by_phase,
    plot_top_operators,
    predicted_peak_by_category,
    profile_once,
    profiler_flops,
    reconcile_cruncher_step,
    reconcile_transformer_step,
    step_peak_by_category,
    sum_of_parts_by_category,
    time_matmuls,
    trace_event_names,
    track_memory,
    transformer_training_state,
    without_profiler_chatter,
)
from lecture_utils.transformer import (
    Transformer,
    TransformerConfig,
    language_model_loss,
    num_parameters,
    preset,
    training_memory,
)


@pytest.fixture(autouse=True)
def profiles_in_tmp(tmp_path, monkeypatch):
    """Traces and snapshots go to a temporary folder, not the repository's build/."""
    monkeypatch.setattr(profiling, "PROFILE_DIR", tmp_path / "profiles")
    yield
    plt.close("all")


# --- quiet profiling ---------------------------------------------------------------------------

def test_chatter_is_dropped_and_everything_else_kept(capfd):
    with without_profiler_chatter():
        os.write(2, b"USDT:2026-12-01 02:28:39 1:1 SyncActivityProfilerHandler.cpp:52] start\n")
        os.write(2, b"[W CPUAllocator.cpp:245] Memory block of unknown size was allocated "
                    b"before the profiling started, profiler results will not include it\n")
        os.write(2, b"a real warning\n")
    err = capfd.readouterr().err
    assert err == "a real warning\n"


def test_profiling_prints_nothing(capfd):
    x = torch.randn(32, 32)
    profile_once(lambda: x @ x, flops=True, memory=True)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_profile_once_counts_a_matmul_and_its_bytes():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    prof = profile_once(lambda: a @ b, flops=True, memory=True)
    assert profiler_flops(prof) == {"aten::mm": 2 * 8 * 16 * 4}
    mm = find_operator(operator_stats(prof), "aten::mm")
    assert mm.calls == 1 and mm.self_cpu_bytes == mm.cpu_bytes == 8 * 4 * 4


def test_profile_once_refuses_what_it_cannot_run():
    with pytest.raises(TypeError, match="fn must be a function"):
        profile_once(42)
    with pytest.raises(ValueError, match="device"):
        profile_once(lambda: None, device="a toaster")


def test_profiler_flops_needs_flops_recorded():
    x = torch.randn(4, 4)
    with pytest.raises(ValueError, match="flops=True"):
        profiler_flops(profile_once(lambda: x @ x))


def test_profiler_flops_formulas_cover_matmuls_conv_add_and_mul_only():
    a, b, c = torch.randn(8, 16), torch.randn(16, 4), torch.randn(8, 4)
    x, w = torch.randn(1, 3, 8, 8), torch.randn(2, 3, 3, 3)

    def ops():
        a @ b, torch.addmm(c, a, b), torch.nn.functional.conv2d(x, w)
        c + c, c * c, c - c, c / c, torch.exp(c), c.clone().add_(c)

    counts = profiler_flops(profile_once(ops, flops=True))
    assert set(counts) == {"aten::mm", "aten::addmm", "aten::conv2d", "aten::add", "aten::mul"}
    assert counts["aten::add"] == counts["aten::mul"] == 32  # one FLOP per element
    assert counts["aten::addmm"] == 2 * 8 * 16 * 4  # the bias add is not counted


def test_self_and_total_memory_of_a_parent_and_its_child():
    torch.manual_seed(0)
    D, L, B = 32, 3, 64
    model, x, y = Cruncher(D, L), torch.randn(B, D), torch.randn(B)
    optimizer = make_optimizer("adagrad", model.parameters(), lr=0.01)
    train_step(model, optimizer, x, y)
    stats = operator_stats(profile_once(lambda: train_step(model, optimizer, x, y), memory=True))
    matmul, mm = find_operator(stats, "aten::matmul"), find_operator(stats, "aten::mm")
    forward = 4 * (L * B * D + B)
    assert (matmul.calls, matmul.self_cpu_bytes, matmul.cpu_bytes) == (L + 1, 0, forward)
    assert mm.calls == 3 * L + 2  # forward L + 1, weight gradients L + 1, input gradients L
    assert mm.self_cpu_bytes == mm.cpu_bytes == forward + 4 * (L * D * D + D) + 4 * L * B * D
    assert [r.self_cpu_us for r in stats] == sorted((r.self_cpu_us for r in stats), reverse=True)


def test_find_operator_names_what_the_profile_has():
    x = torch.randn(4, 4)
    stats = operator_stats(profile_once(lambda: x @ x))
    with pytest.raises(KeyError, match="no operator named 'aten::conv2d'.*aten::mm"):
        find_operator(stats, "aten::conv2d")


def test_operator_table_shows_memory_only_when_profiled():
    x = torch.randn(16, 16)
    plain = format_operator_table(operator_stats(profile_once(lambda: x @ x)))
    with_memory = format_operator_table(operator_stats(profile_once(lambda: x @ x, memory=True)))
    assert "aten::mm" in plain and "KB" not in plain
    assert "total KB" in with_memory
    assert max(len(line) for line in with_memory.splitlines()) <= 100  # fits a projector
    stats = operator_stats(profile_once(lambda: x @ x, memory=True))
    bytes_only = format_operator_table(stats, by="cpu_bytes", times=False)
    assert "µs" not in bytes_only and bytes_only.splitlines()[1].startswith("aten::")
    with pytest.raises(ValueError, match="memory=True"):
        format_operator_table(operator_stats(profile_once(lambda: x @ x)), times=False)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"limit": 0}, ValueError, "limit must be positive"),
    ({"limit": 2.5}, TypeError, "limit must be an int"),
    ({"by": "speed"}, ValueError, "by must be one of"),
])
def test_operator_table_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        format_operator_table([], **kwargs)


# --- traces ------------------------------------------------------------------------------------

def test_export_trace_writes_a_readable_timeline():
    x = torch.randn(16, 16)

    def labelled():
        with record_function("my region"):
            x @ x

    path = export_trace(profile_once(labelled), "step")
    assert path == profiling.PROFILE_DIR / "step.json"
    assert {"my region", "aten::mm"} <= trace_event_names(path)
    assert [p.name for p in path.parent.iterdir()] == ["step.json"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "..", 3])
def test_export_trace_refuses_paths_for_names(name):
    x = torch.randn(2, 2)
    with pytest.raises(ValueError, match="plain file name"):
        export_trace(profile_once(lambda: x @ x), name)


def test_a_failed_export_leaves_the_old_trace_untouched(monkeypatch):
    x = torch.randn(4, 4)
    prof = profile_once(lambda: x @ x)
    path = export_trace(prof, "step")
    before = path.read_bytes()

    def half_written(target):
        with open(target, "w") as f:
            f.write('{"traceEvents": [')
        raise OSError("disk full")

    monkeypatch.setattr(prof, "export_chrome_trace", half_written)
    with pytest.raises(OSError, match="disk full"):
        export_trace(prof, "step")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["step.json"]


# --- MemTracker --------------------------------------------------------------------------------

def test_by_category_names_and_totals():
    from torch.distributed._tools.mem_tracker import _MemRefType

    snapshot = {torch.device("cpu"): {_MemRefType.PARAM: 40, _MemRefType.ACT: 8, "Total": 48}}
    result = by_category(snapshot)
    assert result["Parameter"] == 40 and result["Activation"] == 8 and result["Total"] == 48
    assert set(result) == {*CATEGORIES, "Total"}
    assert by_category({}, "cpu") == {**dict.fromkeys(CATEGORIES, 0), "Total": 0}


def test_track_memory_sees_a_temporary_and_what_existed_before():
    x = torch.randn(100)

    def make_and_drop():
        y = x * 2  # 400 bytes, freed when the function returns
        return (y + 1).sum()  # 400 more while y is alive, and the sum (4) while both are

    peak = track_memory(make_and_drop, x)
    assert peak["Other"] == 400 and peak["Activation"] == 804 and peak["Total"] == 1204
    with pytest.raises(TypeError, match="fn must be a function"):
        track_memory("not a function")


def test_live_bytes_after_each_call_sees_leaks_and_no_hooks():
    kept = []
    x = torch.randn(10)
    assert live_bytes_after_each_call(lambda: kept.append(x * 2), 3) == [40, 80, 120]
    assert growth_per_call([40, 80, 120]) == [40, 40]
    model = Transformer(cpu_sized("gpt2-small"))
    ids = torch.randint(0, 512, (2, 8))
    item_only = lambda: language_model_loss(model, ids, ids).item()  # noqa: E731
    # MemTracker's module hooks keep a graph that no backward consumed; this count has none.
    assert growth_per_call(live_bytes_after_each_call(item_only, 3)) == [0, 0]
    assert min(growth_per_call(memory_after_each_call(item_only, 3, model, ids))) > 0
    with pytest.raises(ValueError, match="calls must be positive"):
        live_bytes_after_each_call(item_only, 0)


def test_memory_after_each_call_finds_a_leak_and_growth_per_call():
    kept = []
    x = torch.randn(10)
    after = memory_after_each_call(lambda: kept.append(x * 2), 4, x)
    assert growth_per_call(after) == growth_per_call(after, "Activation") == [40, 40, 40]
    fixed = memory_after_each_call(lambda: (x * 2).sum().item(), 3, x)
    assert growth_per_call(fixed) == [0, 0]


@pytest.mark.parametrize("args, error, match", [
    ((lambda: None, 0), ValueError, "calls must be positive"),
    ((lambda: None, True), TypeError, "calls must be an int"),
    ((None, 2), TypeError, "fn must be a function"),
])
def test_memory_after_each_call_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        memory_after_each_call(*args)


def test_growth_per_call_bad_arguments():
    one = [{**dict.fromkeys(CATEGORIES, 0), "Total": 0}]
    with pytest.raises(ValueError, match="at least 2 calls"):
        growth_per_call(one)
    with pytest.raises(ValueError, match="category must be one of"):
        growth_per_call(one * 2, "Weights")


# --- the Cruncher ------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, num_layers, batch", [(32, 2, 8), (16, 3, 64), (8, 1, 5)])
def test_cruncher_step_flops_is_what_flopcountermode_counts(dim, num_layers, batch):
    from torch.utils.flop_counter import FlopCounterMode

    model = Cruncher(dim, num_layers)
    x, y = torch.randn(batch, dim), torch.randn(batch)
    counter = FlopCounterMode(display=False)
    with counter:
        torch.nn.functional.mse_loss(model(x), y).backward()
    assert counter.get_total_flops() == cruncher_step_flops(dim, num_layers, batch)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_cruncher_step_flops_bad_sizes(bad):
    with pytest.raises((TypeError, ValueError), match="dim must"):
        cruncher_step_flops(bad, 2, 8)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
def test_predicted_peak_by_category_is_notebook_06s_peak(optimizer):
    moment, predicted = predicted_peak_by_category(64, 3, 32, optimizer)
    assert predicted["Total"] == predict_peak_training_memory(64, 3, 32, optimizer)
    assert predicted["Total"] == sum(predicted[c] for c in CATEGORIES)
    assert predicted["Parameter"] == 4 * (3 * 64 * 64 + 64)
    assert moment in ("forward done", "optimizer step") or moment.startswith("backward")


@pytest.mark.parametrize("dim, num_layers, batch", [(32, 2, 128), (64, 3, 256)])
def test_cruncher_reconciled_when_the_peak_is_in_backward(dim, num_layers, batch):
    rec = reconcile_cruncher_step(dim, num_layers, batch)
    flops = list(rec.flops.values())
    assert flops[1] == flops[2] == flops[3] == flops[0] - 2 * batch * dim * dim
    assert rec.profiler_flops == {"aten::mm": flops[2]}
    moment, predicted = next(iter(rec.memory.items()))
    measured = rec.memory["MemTracker"]
    assert "backward" in moment
    assert {c: measured[c] - predicted[c] for c in CATEGORIES if measured[c] != predicted[c]} == {
        "Gradient": -4 * dim * dim, "Temp": 4 * dim * dim, "Activation": 4 * batch + 4}


@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop", "adam"])
def test_cruncher_reconciled_when_the_peak_is_the_update(optimizer):
    dim, batch = 64, 8
    rec = reconcile_cruncher_step(dim, 2, batch, optimizer)
    moment, predicted = next(iter(rec.memory.items()))
    measured = rec.memory["MemTracker"]
    assert "optimizer step" in moment
    # The update's temporary is made inside optimizer.step(): MemTracker files it as Optstate.
    assert {c: measured[c] - predicted[c] for c in CATEGORIES if measured[c] != predicted[c]} == {
        "Activation": 4 * batch}


def test_format_reconciliation_lists_every_source():
    rec = reconcile_cruncher_step(16, 1, 32)
    text = format_reconciliation(rec)
    assert all(source in text for source in (*rec.flops, *rec.memory))
    assert "Buffer" not in text  # a category that is zero everywhere is left out


# --- the Transformer ---------------------------------------------------------------------------

ALL_COMBINATIONS = [
    TransformerConfig(vocab_size=512, context_length=32, d_model=48, num_layers=2, num_heads=4,
                      num_kv_heads=kv, d_ff=96, norm=norm, mlp=mlp, positions=positions,
                      bias=bias, tied_embeddings=tied)
    for norm, mlp, positions, bias, tied, kv in itertools.product(
        ("layernorm", "rmsnorm"), ("gelu", "swiglu"), ("learned", "rope"), (False, True),
        (False, True), (4, 2))
]


def combination_id(cfg):
    return (f"{cfg.norm}-{cfg.mlp}-{cfg.positions}-bias{int(cfg.bias)}"
            f"-tied{int(cfg.tied_embeddings)}-kv{cfg.num_kv_heads}")


@pytest.mark.parametrize("cfg", ALL_COMBINATIONS, ids=combination_id)
def test_parameter_tensors_counts_the_modules_tensors(cfg):
    assert parameter_tensors(cfg) == len(list(Transformer(cfg).parameters()))


# Every norm, MLP and position kind together; biases, tying and K/V heads alternate.
SOME_COMBINATIONS = [
    cfg.replace(bias=bool(i % 2), tied_embeddings=bool(i // 2 % 2),
                num_kv_heads=2 + 2 * (i % 3 > 0))
    for i, cfg in enumerate(ALL_COMBINATIONS[::4])
]


@pytest.mark.parametrize("cfg", SOME_COMBINATIONS, ids=combination_id)
def test_memory_at_backward_start_is_memtrackers_peak(cfg):
    # A vocabulary much larger than d_ff, as in real language models, puts the peak there.
    model, optimizer, ids, targets = transformer_training_state(cfg, 3, 16)

    def step():
        language_model_loss(model, ids, targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    assert track_memory(step, model, optimizer, ids, targets) == memory_at_backward_start(
        cfg, 3, 16)


def test_sum_of_parts_is_notebook_09s_training_memory():
    cfg = cpu_sized("llama3-8b")
    parts = training_memory(cfg, 4, 64, optimizer="adamw", precision="fp32",
                            activation_dtype=torch.float32)
    mapped = sum_of_parts_by_category(cfg, 4, 64)
    assert mapped["Parameter"] == parts["weights"] and mapped["Total"] == parts["total"]
    assert mapped["Temp"] == mapped["Other"] == mapped["Buffer"] == 0


@pytest.mark.parametrize("name", ["gpt2-small", "llama3-8b"])
def test_transformer_reconciled_exactly(name):
    cfg, batch, seq_len = cpu_sized(name), 4, 64  # enough tokens that backward holds the peak
    rec = reconcile_transformer_step(cfg, batch, seq_len)
    f = rec.flops
    matmuls = {op: v for op, v in rec.profiler_flops.items()
               if op in ("aten::mm", "aten::addmm", "aten::bmm")}
    elementwise = {op: v for op, v in rec.profiler_flops.items() if op not in matmuls}
    assert f["formula (notebook 09)"] == f["FlopCounterMode"] == sum(matmuls.values())
    assert f["torch.profiler"] - f["FlopCounterMode"] == sum(elementwise.values()) > 0
    assert set(elementwise) <= {"aten::add", "aten::mul"}
    scores = 3 * 2 * 2 * batch * cfg.num_heads * seq_len**2 * cfg.head_dim * cfg.num_layers
    assert f["FlopCounterMode"] - f["FlopCounterMode, fused attention"] == scores
    parts, formula, measured = rec.memory.values()
    assert formula == measured
    assert measured["Gradient"] == 0 and parts["Gradient"] == 4 * num_parameters(cfg)["total"]


def test_cpu_sized_keeps_the_family():
    for name in ("gpt2-small", "llama2-7b", "llama3-8b", "llama3-70b"):
        full, small = preset(name), cpu_sized(name)
        for field in ("norm", "mlp", "positions", "bias", "tied_embeddings"):
            assert getattr(small, field) == getattr(full, field)
        assert small.num_heads // small.num_kv_heads == full.num_heads // full.num_kv_heads
        assert abs(small.d_ff / small.d_model - full.d_ff / full.d_model) <= 0.125
        assert "CPU-sized" in small.name
    with pytest.raises(ValueError, match="unknown preset"):
        cpu_sized("gpt-5")


def test_transformer_training_state_has_state_and_no_gradients():
    model, optimizer, ids, targets = transformer_training_state(cpu_sized("gpt2-small"), 2, 8)
    assert len(optimizer.state) == parameter_tensors(model.cfg)
    assert all(p.grad is None for p in model.parameters())
    assert ids.shape == targets.shape == (2, 8) and not torch.equal(ids, targets)
    with pytest.raises(ValueError, match="batch must be positive"):
        transformer_training_state(model.cfg, 0, 8)


def test_memory_by_phase_follows_a_step():
    cfg = cpu_sized("gpt2-small")
    model, optimizer, ids, targets = transformer_training_state(cfg, 4, 64)
    phases = memory_by_phase(lambda: language_model_loss(model, ids, targets), optimizer,
                             model, ids, targets)
    assert list(phases) == list(profiling.STEP_PHASES)
    params = 4 * num_parameters(cfg)["total"]
    assert phases["start"]["Activation"] == phases["start"]["Gradient"] == 0
    assert phases["after forward"]["Activation"] > 0
    assert phases["after backward"]["Gradient"] == params
    assert phases["after zero_grad"]["Gradient"] == 0
    assert phases["peak"] == memory_at_backward_start(cfg, 4, 64)
    assert phases["peak"]["Total"] == max(p["Total"] for p in phases.values())
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        memory_by_phase(None, optimizer)


# --- overhead and the GPU's view -----------------------------------------------------------------

def test_time_matmuls_measures_every_size_on_one_thread_and_restores_the_count():
    threads = torch.get_num_threads()
    timings = time_matmuls((1, 16), repeats=2)
    assert torch.get_num_threads() == threads
    assert [t.n for t in timings] == [1, 16] and all(len(t.times) == 2 for t in timings)
    assert all(t.median > 0 for t in timings)
    assert math.isclose(timings[1].flops_per_second, 2 * 16**3 / timings[1].median)


def test_timing_threads_restores_the_thread_count_even_after_an_error():
    from lecture_utils.flops import timing_threads

    threads = torch.get_num_threads()
    with pytest.raises(ZeroDivisionError):
        with timing_threads("cpu"):
            assert torch.get_num_threads() == 1
            1 / 0  # noqa: B018
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((), {}, TypeError, "sizes"),
    (((),), {}, ValueError, "at least one matrix size"),
    (((0,),), {}, ValueError, "each size must be positive"),
    (((4,),), {"repeats": 0}, ValueError, "repeats must be positive"),
])
def test_time_matmuls_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        time_matmuls(*args, **kwargs)


# The shape tests/test_timing_under_load.py parses: `name: median unit (low-high)`.
TIMING_LINE = re.compile(r"(?P<name>[^:\n]+): (?P<median>[\d.e+-]+) (?P<unit>s|ms|us) "
                         r"\((?P<low>[\d.e+-]+)-(?P<high>[\d.e+-]+)\)")


def timed(n: int, *microseconds: float) -> MatmulTiming:
    return MatmulTiming(n, tuple(us * 1e-6 for us in microseconds))


def shares_printed(timings: list[MatmulTiming]) -> dict[int, float]:
    """n -> the fixed cost's share of its time, read back from the printed lines."""
    shares = {}
    for t in timings:
        line = format_matmul_timing(t, overhead=timings[0].median)
        assert TIMING_LINE.match(line) and len(line) <= 100, line
        shares[t.n] = float(re.search(r"the fixed cost +(\d+)% of it", line)[1]) / 100
    return shares


def test_format_matmul_timing_prints_the_timing_shape_and_the_share():
    line = format_matmul_timing(timed(32, 3.0, 3.1, 3.2, 3.3, 3.4), overhead=1.6e-6)
    m = TIMING_LINE.match(line)
    assert m and m["name"] == "n=   32" and m["unit"] == "us" and m["median"] == "3.2"
    assert "the fixed cost  50% of it" in line
    assert " ms (" in format_matmul_timing(timed(512, 1500, 1600, 1700), overhead=2e-6)


CLEAN = [timed(1, 2.0, 2.1, 2.2), timed(8, 2.5, 2.6, 2.7), timed(32, 3.5, 3.6, 3.7),
         timed(128, 55, 56, 57), timed(512, 2000, 2100, 2200)]


def flat(text: str) -> str:
    """Wrapped text on one line."""
    return " ".join(text.split())


def test_overhead_summary_reads_a_clean_split_and_checks_the_model_against_it():
    text = flat(overhead_summary(CLEAN))
    assert "up to n=32 are mostly overhead" in text and "from n=128 mostly work" in text
    assert "between the two" in text
    shares = shares_printed(CLEAN)
    assert all(shares[n] >= 0.5 for n in (1, 8, 32)) and all(shares[n] < 0.5 for n in (128, 512))
    assert all(len(line) <= 100 for line in overhead_summary(CLEAN).splitlines())


def test_overhead_summary_never_calls_a_v_shaped_sweep_a_clean_split():
    # n=8 slowed by another program: slower than n=32.
    bumpy = [timed(1, 2.0), timed(8, 9.0), timed(32, 3.5), timed(128, 55.0), timed(512, 2100.0)]
    text = flat(overhead_summary(bumpy))
    assert text.startswith("No clean split") and "mostly overhead at n=1 and 32" in text
    assert "mostly work at n=8, 128 and 512" in text and "rerun" in text


def test_overhead_summary_says_when_the_model_disagrees_with_the_split():
    # n=128 just mostly work, and n=512 at a far higher rate: that rate puts the model's
    # crossover near n=175, above n=128, where the measurements say work already dominates.
    odd = [timed(1, 40.0), timed(8, 41.0), timed(32, 60.0), timed(128, 90.0), timed(512, 1000)]
    text = flat(overhead_summary(odd))
    assert "up to n=32 are mostly overhead" in text and "outside that range" in text


def test_overhead_summary_when_nothing_is_mostly_work():
    text = flat(overhead_summary([timed(1, 2.0), timed(8, 2.2), timed(16, 2.5)]))
    assert text.startswith("Every size measured is mostly overhead, up to n=16")


@pytest.mark.parametrize("bad", [[], None, [1.0], "timings"])
def test_overhead_summary_bad_arguments(bad):
    with pytest.raises(ValueError, match="timings must be"):
        overhead_summary(bad)


def test_overhead_crossover():
    assert math.isclose(overhead_crossover(10e-6, 989e12), (10e-6 * 989e12 / 2) ** (1 / 3))
    n = overhead_crossover(4e-6, 5e10)
    assert math.isclose(2 * n**3 / 5e10, 4e-6)
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="overhead_seconds must be"):
            overhead_crossover(bad, 1e12)
        with pytest.raises(ValueError, match="flops_per_second must be"):
            overhead_crossover(1e-6, bad)


def test_step_peak_moves_to_the_update_with_one_short_sequence():
    cfg = cpu_sized("gpt2-small")
    assert step_peak_by_category(cfg, 4, 64) == memory_at_backward_start(cfg, 4, 64)
    one = step_peak_by_category(cfg, 1, 16)
    assert one["Gradient"] == 4 * num_parameters(cfg)["total"] and one["Activation"] == 0
    # The sum of the parts is above the peak at 4 x 64 tokens, below it at 16 x 64.
    for batch, above in ((4, True), (16, False)):
        parts = sum_of_parts_by_category(cfg, batch, 64)["Total"]
        assert (parts > step_peak_by_category(cfg, batch, 64)["Total"]) is above


def test_gpu_only_helpers_say_they_need_cuda():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        launch_vs_kernel(64, "cpu")
    with pytest.raises(ValueError, match="need a CUDA device"):
        cuda_memory_snapshot(lambda: None, "x", "cpu")
    with pytest.raises(TypeError, match="fn must be a function"):
        cuda_memory_snapshot(None, "x", "cpu")
    with pytest.raises(ValueError, match="plain file name"):
        cuda_memory_snapshot(lambda: None, "../x", "cpu")


def test_allocated_over_time_from_a_snapshot():
    snapshot = {"device_traces": [[
        {"action": "segment_alloc", "size": 2 << 20},
        {"action": "alloc", "size": 512},
        {"action": "alloc", "size": 1024},
        {"action": "free_requested", "size": 512},
        {"action": "free_completed", "size": 512},
        {"action": "alloc", "size": 2048},
    ]]}
    assert allocated_over_time(snapshot) == [512, 1536, 1024, 3072]
    for bad in ({}, {"device_traces": []}, {"device_traces": "x"}):
        with pytest.raises(ValueError, match="CUDA memory snapshot"):
            allocated_over_time(bad)
    with pytest.raises(ValueError, match="device 1"):
        allocated_over_time(snapshot, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_kernels_and_snapshots(tmp_path):
    launch_us, kernel_us = launch_vs_kernel(4096, "cuda")
    assert kernel_us > launch_us > 0
    snapshot = cuda_memory_snapshot(lambda: torch.randn(1024, 1024, device="cuda") @ torch.randn(
        1024, 1024, device="cuda"), "tiny", "cuda")
    assert max(allocated_over_time(snapshot)) >= 3 * 4 * 1024 * 1024
    assert (profiling.PROFILE_DIR / "tiny.pickle").exists()
    assert (profiling.PROFILE_DIR / "tiny.html").exists()


# --- figures -----------------------------------------------------------------------------------

def test_figures_draw():
    cfg = cpu_sized("gpt2-small")
    model, optimizer, ids, targets = transformer_training_state(cfg, 2, 8)
    phases = memory_by_phase(lambda: language_model_loss(model, ids, targets), optimizer,
                             model, ids, targets)
    assert plot_memory_by_phase(phases, "t", reference=("sum", 10**7)).axes
    x = torch.randn(8, 8)
    assert plot_top_operators(operator_stats(profile_once(lambda: x @ x))).axes
    timings = [MatmulTiming(1, (2e-6, 3e-6)), MatmulTiming(64, (1e-5, 1.2e-5))]
    assert plot_matmul_overhead(timings).axes
    assert plot_allocated_over_time([0, 512, 0], "t").axes
    with pytest.raises(ValueError, match="limit must be positive"):
        plot_top_operators([], limit=0)


# --- exercises: each hint comes from its mistake, made in full -----------------------------------

def verdict(number, answer):
    return EXERCISES.feedback(number, answer)


@pytest.mark.parametrize("number", sorted(EXERCISES.exercises))
def test_exercises_say_what_they_want_and_name_junk(number):
    exercise = EXERCISES.exercises[number]
    assert exercise.wants
    assert verdict(number, None).correct is None
    for junk, words in ((float("nan"), "nan"), ("13", "text"), (None, "not answered yet")):
        assert words in verdict(number, junk).message, (junk, verdict(number, junk))


def test_the_stubs_of_the_student_copy_are_not_answered_yet():
    from course_tools.course import strip_solution

    path = Path(__file__).resolve().parent.parent / "notebooks/10_profiling_and_memory.ipynb"
    cells = json.loads(path.read_text())["cells"]
    stubs = ["".join(c["source"]) for c in cells if "solution" in c["metadata"].get("tags", [])]
    namespace = {"torch": torch}
    for stub in stubs:
        exec(strip_solution(stub), namespace)  # noqa: S102 (the course's own cells)
    answers = {n: namespace.get(f"answer_{n}") for n in range(1, 5)}
    answers[5] = namespace["batch_accuracy"]
    for number, answer in answers.items():
        assert verdict(number, answer).correct is None, (number, verdict(number, answer))


def test_exercise_1_self_time():
    assert verdict(1, 13).correct is True
    total, t, addmm = 120, 6, 101
    mistakes = {"its total time": total, "the children's time": t + addmm,
                "aten::t as well": total - addmm, "aten::addmm as well": total - t}
    for words, answer in mistakes.items():
        assert words in verdict(1, answer).message, (words, verdict(1, answer))


def adamw_state_after_one_step() -> dict[str, list[torch.Tensor]]:
    """torch.optim.AdamW's state after one step on exercise 2's shapes, by kind."""
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in profiling.ADAMW_SHAPES]
    optimizer = torch.optim.AdamW(params)
    sum((p**2).sum() for p in params).backward()
    optimizer.step()
    return {kind: [state[kind] for state in optimizer.state.values()]
            for kind in ("exp_avg", "exp_avg_sq", "step")}


def test_exercise_2_adamw_state():
    state = adamw_state_after_one_step()
    nbytes = lambda tensors: sum(t.nbytes for t in tensors)  # noqa: E731
    right = nbytes(state["exp_avg"] + state["exp_avg_sq"] + state["step"])
    assert right == 8 * (1000 * 512 + 512 + 512 * 10) + 12 and verdict(2, right).correct is True
    mistakes = {
        "add AdamW's step counters": nbytes(state["exp_avg"] + state["exp_avg_sq"]),
        "two moments per parameter": nbytes(state["exp_avg"] + state["step"]),
        "not one per optimizer": nbytes(state["exp_avg"] + state["exp_avg_sq"]
                                        + state["step"][:1]),
        "4 bytes, not 8": nbytes(state["exp_avg"] + state["exp_avg_sq"]
                                 + [s.double() for s in state["step"]]),
    }
    for words, answer in mistakes.items():
        assert words in verdict(2, answer).message, (words, verdict(2, answer))
    assert "must be exact" in verdict(2, 4.14e6).message  # a byte count is exact


def test_exercise_2_is_what_memtracker_files_after_the_step():
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in profiling.ADAMW_SHAPES]
    optimizer = torch.optim.AdamW(params)
    phases = memory_by_phase(lambda: sum((p**2).sum() for p in params), optimizer, *params)
    assert verdict(2, phases["after optimizer step"]["Optstate"]).correct is True


def test_exercise_3_optstate_at_the_update():
    dim, layers, batch = (profiling.ADAGRAD_CRUNCHER[k] for k in ("dim", "num_layers", "batch"))
    measured = reconcile_cruncher_step(dim, layers, batch).memory["MemTracker"]["Optstate"]
    assert verdict(3, measured).correct is True
    model = Cruncher(dim, layers)
    optimizer = make_optimizer("adagrad", model.parameters(), lr=0.01)
    train_step(model, optimizer, torch.randn(batch, dim), torch.randn(batch))
    sums = sum(t.nbytes for s in optimizer.state.values() for t in s.values()
               if t.dim())  # the sums of squares
    sizes = [p.nbytes for p in model.parameters()]
    mistakes = {
        "sum of squares alone": sums,
        "one temporary at a time": sums + sum(sizes),
        "not the head's D": sums + min(sizes),
        "not two": 2 * sums + max(sizes),
    }
    for words, answer in mistakes.items():
        assert words in verdict(3, answer).message, (words, verdict(3, answer))


def solve(work: callable, overhead: float) -> float:
    """The n where work(n) == overhead, by bisection (no formula from the checker)."""
    low, high = 1e-3, 1e7
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if work(mid) < overhead else (low, mid)
    return low


def test_exercise_4_crossover():
    o, r = 10e-6, 989e12
    right = solve(lambda n: 2 * n**3 / r, o)
    assert verdict(4, right).correct is True and verdict(4, float(f"{right:.3g}")).correct
    mistakes = {
        "2 n^3 FLOPs, not n^3": solve(lambda n: n**3 / r, o),
        "divide by 2, do not multiply": solve(lambda n: n**3 / (2 * r), o),
        "take a cube root": solve(lambda n: 2 * n**2 / r, o),
        "10 times too large": [solve(lambda n: 2 * n**3 / r, 10e-3),  # ms for µs
                               solve(lambda n: 2 * n**3 / (r * 1e3), o)],  # PFLOP/s
        "10 times too small": [solve(lambda n: 2 * n**3 / r, 10e-9),  # ns for µs
                               solve(lambda n: 2 * n**3 / (r / 1e3), o)],  # GFLOP/s
    }
    for words, answers in mistakes.items():
        for answer in answers if isinstance(answers, list) else [answers]:
            assert words in verdict(4, answer).message, (words, verdict(4, answer))


def accurate(model, ids, targets):
    with torch.no_grad():
        return (model(ids).argmax(-1) == targets).float().mean().item()


def returns_logits(model, ids, targets):
    return model(ids)


def returns_detached_logits(model, ids, targets):
    return model(ids).detach()


def returns_a_tensor(model, ids, targets):
    with torch.no_grad():
        return (model(ids).argmax(-1) == targets).float().mean()


def error_rate(model, ids, targets):
    with torch.no_grad():
        return (model(ids).argmax(-1) != targets).float().mean().item()


def returns_a_list(model, ids, targets):
    return [accurate(model, ids, targets)]


def stub(model, ids, targets):
    return None


@pytest.mark.parametrize("answer, verdict_wanted, words", [
    (accurate, True, "well done"),
    (returns_logits, False, "whole graph"),
    (returns_detached_logits, False, "the logits. .detach() does not free"),
    (returns_a_tensor, False, "Python float"),
    (error_rate, False, "fraction of positions"),
    (returns_a_list, False, "not a list"),
    (stub, None, "not answered yet"),
    ("not a function", False, "define a function"),
])
def test_exercise_5_says_what_is_wrong(answer, verdict_wanted, words):
    feedback = verdict(5, answer)
    assert feedback.correct is verdict_wanted and words in feedback.message, feedback.message


def test_trace_file_is_json_with_events():
    x = torch.randn(4, 4)
    path = export_trace(profile_once(lambda: x @ x), "json_check")
    assert isinstance(json.loads(path.read_text())["traceEvents"], list)
