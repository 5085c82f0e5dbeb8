"""Tests for lecture_utils.distributed: the ZeRO napkin, and real gloo process groups."""

import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import torch

from lecture_utils import distributed as D
from lecture_utils.hardware import GB, LINKS, UnknownLinkError, lookup_link, peak_flops
from lecture_utils.napkin import PRECISIONS, bytes_per_parameter, max_parameters

ROOT = Path(__file__).resolve().parents[1]
CONFIG = D.TrainConfig()
P = 64 * 64 * 4 + 64  # the Cruncher of TrainConfig()


# --- what each GPU holds ----------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_stage_0_is_the_napkins_bytes_per_parameter(precision):
    per_param = bytes_per_parameter("adamw", precision)
    b = D.bytes_per_gpu(1000, 8, 0, "adamw", precision)
    assert b.total == 1000 * per_param.total
    assert D.sharded_parts(0, precision) == ()


def test_each_stage_shards_more_parts():
    assert D.sharded_parts(1) == ("optimizer_state",)
    assert D.sharded_parts(2) == ("optimizer_state", "gradients")
    assert D.sharded_parts(3) == ("optimizer_state", "gradients", "weights")
    # Under mixed precision the fp32 master weights belong to the optimizer: stage 1.
    assert D.sharded_parts(1, "mixed") == ("optimizer_state", "weights")
    assert D.sharded_parts(3, "mixed")[-1] == "weights_copy"


def test_the_zero_papers_figure_1():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 GPUs, K = 12 (Adam, fp16 training).
    gb = [D.bytes_per_gpu(7.5e9, 64, s, "adam", "mixed_bf16_grads").total / GB
          for s in D.ZERO_STAGES]
    assert [round(x, 1) for x in gb] == [120.0, 31.4, 16.6, 1.9]


def test_notebook_00s_40b_is_zero_3_and_ddp_fits_5b():
    fits = [D.max_parameters_sharded(8, 80 * GB, s) for s in D.ZERO_STAGES]
    assert fits[3] == pytest.approx(max_parameters(8, 80 * GB, 16)) == pytest.approx(40e9)
    assert fits[0] == pytest.approx(5e9)
    assert fits[1] == pytest.approx(80e9 / 9)
    assert fits[2] == pytest.approx(80e9 / 5.5)


def test_the_largest_model_fills_memory_exactly():
    for stage in D.ZERO_STAGES:
        n = D.max_parameters_sharded(16, 40 * GB, stage, "sgd", "mixed")
        assert D.bytes_per_gpu(n, 16, stage, "sgd", "mixed").total == pytest.approx(40 * GB)


# --- what each GPU sends ----------------------------------------------------------------------

def test_ring_collectives():
    assert D.ring_bytes_per_gpu("all_reduce", 800, 8) == 2 * 7 / 8 * 800
    assert D.ring_bytes_per_gpu("all_gather", 800, 8) == 7 / 8 * 800
    assert D.ring_bytes_per_gpu("reduce_scatter", 800, 8) == 7 / 8 * 800
    assert D.ring_bytes_per_gpu("broadcast", 800, 8) == 7 / 8 * 800
    assert all(D.ring_bytes_per_gpu(c, 800, 1) == 0 for c in D.COLLECTIVES)
    # An all-reduce is a reduce-scatter followed by an all-gather.
    assert D.ring_bytes_per_gpu("all_reduce", 96, 4) == (
        D.ring_bytes_per_gpu("reduce_scatter", 96, 4) + D.ring_bytes_per_gpu("all_gather", 96, 4))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_zero_1_and_2_send_what_ddp_sends_and_zero_3_half_again(precision):
    sent = [D.communication_bytes_per_gpu(1e9, 8, s, precision) for s in D.ZERO_STAGES]
    if precision != "mixed":  # gradients and weights travel in the same dtype
        assert sent[1] == pytest.approx(sent[0]) and sent[2] == pytest.approx(sent[0])
        assert sent[3] == pytest.approx(1.5 * sent[0])
    assert sent[1] == sent[2]


def test_links_are_half_their_bidirectional_datasheet_figure():
    assert lookup_link("NVLink 4").bandwidth == 450e9
    assert lookup_link("infiniband ndr").bandwidth == 50e9
    assert lookup_link("InfiniBand NDR x8").bandwidth == 8 * 50e9
    assert lookup_link("PCIe Gen5 x16").bandwidth == 64e9
    assert all(link.source for link in LINKS.values())
    with pytest.raises(UnknownLinkError, match="NVLink 4"):
        lookup_link("NVLink 9")
    assert D.communication_seconds(50e9, "InfiniBand NDR") == 1.0


def test_step_time_hides_ddp_exactly_at_the_critical_tokens():
    flops = peak_flops("H100 SXM", "bf16") * 0.5
    critical = D.ring_bytes_per_gpu("all_reduce", 2, 8) / 50e9 * flops / 4
    below = D.step_time(1e9, critical * 0.9, 8, 0, "InfiniBand NDR")
    above = D.step_time(1e9, critical * 1.1, 8, 0, "InfiniBand NDR")
    assert below.exposed > 0 and above.exposed == 0
    at = D.step_time(1e9, critical, 8, 0, "InfiniBand NDR")
    assert at.communication["backward"] == pytest.approx(at.compute["backward"])
    assert at.total == pytest.approx(6e9 * critical / flops + at.exposed)


# --- real process groups ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs():
    return {n: D.measure_strategies(n, config=CONFIG) for n in (2, 4)}


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("strategy", D.STRATEGIES)
def test_each_ranks_bytes_equal_the_formula(runs, world_size, strategy):
    run = runs[world_size][strategy]
    predicted = D.predicted_rank_bytes(strategy, CONFIG, world_size)
    for measured, p in zip(run.ranks, predicted, strict=True):
        assert measured["weights"] == p.weights
        assert measured["gradients"] == p.gradients
        assert measured["optimizer_state"] == p.optimizer_state
        # AdamW's step counter: one 4-byte tensor per parameter tensor this rank updates.
        tensors = 5 if strategy != "zero1" else None
        if tensors:
            assert measured["step_counters"] == 4 * tensors


@pytest.mark.parametrize("world_size", [2, 4])
def test_zero_1_shards_whole_tensors_and_averages_to_the_formula(runs, world_size):
    run = runs[world_size]["zero1"]
    owned = [r["owned_parameters"] for r in run.ranks]
    numels = [64 * 64] * 4 + [64]
    assert owned == [sum(o) for o in D.zero_partition(numels, world_size)]
    assert sum(owned) == P
    mean_state = sum(r["optimizer_state"] for r in run.ranks) / world_size
    assert mean_state == D.bytes_per_gpu(P, world_size, 1).optimizer_state


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("strategy", D.STRATEGIES)
def test_observed_collectives_equal_the_formula(runs, world_size, strategy):
    run = runs[world_size][strategy]
    expected = D.payload_by_kind(D.expected_collectives(strategy, P))
    for rank in range(world_size):
        assert D.payload_by_kind(run.collectives(rank)) == expected


def test_fsdp_step_is_the_zero_papers_stage_3():
    assert D.expected_collectives("fsdp", P) == D.step_collectives(P, 3)
    assert D.expected_collectives("ddp", P) == D.step_collectives(P, 0)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ddp_broadcasts_rank_0s_weights_once_at_setup(runs, world_size):
    setup = [D.Collective(*c) for c in runs[world_size]["ddp"].ranks[0]["setup_collectives"]]
    assert sum(c.payload_bytes for c in setup if c.kind == "broadcast") >= 4 * P
    assert runs[world_size]["fsdp"].ranks[0]["setup_collectives"] == []


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("strategy", D.STRATEGIES)
def test_distributed_weights_equal_single_process_weights(runs, world_size, strategy):
    # Same global batch, same AdamW: only the order of float32 sums differs.
    assert runs[world_size][strategy].max_weight_difference < 1e-6


def test_the_weights_moved_far_more_than_the_tolerance():
    model, _, _ = D.cruncher_and_batch(CONFIG)
    trained = D.train_single_process(CONFIG)
    moved = max((a - b).abs().max().item() for a, b in zip(trained, model.parameters()))
    assert moved > 1e-2


def test_collective_log_counts_what_comm_debug_mode_counts():
    counts = D.run_on_ranks(_count_both_ways, 2, timeout=60)
    assert counts[0][0] == counts[0][1] == 4


def _count_both_ways(rank, world_size):
    from torch.distributed.tensor.debug import CommDebugMode

    log, debug = D.CollectiveLog(), CommDebugMode()
    with debug, log:
        t = torch.ones(8)
        torch.distributed.all_reduce(t)
        torch.distributed.broadcast(t, src=0)
        out = torch.empty(8 * world_size)
        torch.distributed.all_gather_into_tensor(out, t)
        torch.distributed.reduce_scatter_tensor(t, out)
    return len(log.calls), debug.get_total_counts()


# --- failures end the group with a clear error ------------------------------------------------

def test_a_rank_that_raises_is_named():
    D.run_on_ranks(D.all_reduce_rank_ids, 1)  # a fork server that is up: time the failure only
    start = time.monotonic()
    with pytest.raises(D.DistributedRunError, match=r"rank 1 of 2 raised .*ValueError.*told to"):
        D.run_on_ranks(D.all_reduce_rank_ids, 2, -1, 1, timeout=10)
    assert time.monotonic() - start < 10
    assert D.leftover_workers() == []


def test_a_hung_collective_fails_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(D.DistributedRunError, match="Timed out"):
        D.run_on_ranks(D.all_reduce_rank_ids, 2, 1, -1, timeout=3)
    assert time.monotonic() - start < 3 + 1
    assert D.leftover_workers() == []


def _killed(rank, world_size):
    if rank == 1:
        os.kill(os.getpid(), 9)  # SIGKILL: no exception, no error file
    return D.all_reduce_rank_ids(rank, world_size)


def _exits(rank, world_size):
    # Both ranks finish joining first: otherwise rank 0 may return and close its sockets while
    # rank 1 is still connecting, and rank 1 fails in init_process_group instead (seen under load).
    torch.distributed.barrier()
    if rank == 1:
        sys.exit(0)
    return rank


def _returns(rank, world_size, kind):
    import numpy as np

    return threading.Lock() if kind == "lock" else np.arange(3) + rank


def test_a_killed_rank_is_named_not_the_rank_that_lost_its_peer():
    for _ in range(3):  # the survivor's "connection closed" must never be reported instead
        with pytest.raises(D.DistributedRunError, match=r"rank 1 of 2 died .*SIGKILL"):
            D.run_on_ranks(_killed, 2, timeout=10)
    assert D.leftover_workers() == []


def test_a_rank_that_exits_without_a_result_is_named():
    with pytest.raises(D.DistributedRunError, match=r"rank 1 of 2 raised in _exits: SystemExit"):
        D.run_on_ranks(_exits, 2, timeout=10)


def test_any_picklable_result_comes_back_and_an_unpicklable_one_is_named():
    results = D.run_on_ranks(_returns, 2, "numpy", timeout=10)
    assert [r.tolist() for r in results] == [[0, 1, 2], [1, 2, 3]]
    with pytest.raises(D.DistributedRunError, match=r"rank \d of 2 raised in _returns: .*pickle"):
        D.run_on_ranks(_returns, 2, "lock", timeout=10)


def test_the_group_sums_rank_ids_and_leaves_nothing_behind():
    assert D.run_on_ranks(D.all_reduce_rank_ids, 4) == [6.0] * 4
    assert D.leftover_workers() == []


def test_spawn_works_too():  # macOS and Windows start every rank this way
    assert D.run_on_ranks(D.all_reduce_rank_ids, 2, start_method="spawn") == [1.0, 1.0]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
def test_no_process_outlives_the_program_that_started_the_group():
    marker = f"COURSE_STRAY_CHECK={uuid.uuid4().hex}"
    script = textwrap.dedent("""
        from lecture_utils import distributed as D

        if __name__ == "__main__":
            assert D.run_on_ranks(D.all_reduce_rank_ids, 2) == [1.0, 1.0]
            for args in ((-1, 1), (1, -1)):  # a rank that raises, a rank that hangs
                try:
                    D.run_on_ranks(D.all_reduce_rank_ids, 2, *args, timeout=1.5)
                except D.DistributedRunError:
                    pass
            assert D.leftover_workers() == []
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), marker.split("=")[0]: marker.split("=")[1]}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    # The fork server exits when it sees its parent gone; unloading torch takes it seconds
    # on a busy machine.
    deadline = time.monotonic() + 15
    while (strays := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert strays == []


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # exited meanwhile, or not ours to read
                pass
    return found


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda: D.bytes_per_gpu(1e9, 8, 4), ValueError, "zero_stage must be one of"),
    (lambda: D.bytes_per_gpu(1e9, 8, True), ValueError, "zero_stage"),
    (lambda: D.bytes_per_gpu(1e9, 0, 1), ValueError, "num_gpus must be >= 1"),
    (lambda: D.bytes_per_gpu(1e9, 8.0, 1), TypeError, "num_gpus must be an int"),
    (lambda: D.bytes_per_gpu(-1, 8, 1), ValueError, "num_parameters"),
    (lambda: D.bytes_per_gpu(1e9, 8, 1, "adamx"), ValueError, "unknown optimizer"),
    (lambda: D.bytes_per_gpu(1e9, 8, 1, precision="bf16"), ValueError, "unknown precision"),
    (lambda: D.max_parameters_sharded(8, 0, 1), ValueError, "memory_per_gpu"),
    (lambda: D.ring_bytes_per_gpu("allreduce", 1, 2), ValueError, "unknown collective"),
    (lambda: D.ring_bytes_per_gpu("all_reduce", math.nan, 2), ValueError, "payload_bytes"),
    (lambda: D.communication_seconds(1, "ethernet"), KeyError, "no interconnect"),
    (lambda: D.step_time(1e9, 1e3, 8, 0, "NVLink 4", mfu=1.5), ValueError, "at most 1"),
    (lambda: D.step_time(1e9, 0, 8, 0, "NVLink 4"), ValueError, "tokens_per_gpu"),
    (lambda: D.TrainConfig(dim=0), ValueError, "dim must be >= 1"),
    (lambda: D.TrainConfig(lr=-1.0), ValueError, "lr"),
    (lambda: D.TrainConfig(seed=-1), ValueError, "seed"),
    (lambda: D.measure_strategies(2, "ddp"), ValueError, "non-empty list"),
    (lambda: D.measure_strategies(2, ["zero3"]), ValueError, "non-empty list"),
    (lambda: D.run_on_ranks(lambda r, w: r, 2), ValueError, "top-level function"),
    (lambda: D.run_on_ranks(print, 0), ValueError, "world_size must be >= 1"),
    (lambda: D.run_on_ranks(D.all_reduce_rank_ids, 2, timeout=0), ValueError, "timeout"),
    (lambda: D.run_on_ranks(D.all_reduce_rank_ids, 2, start_method="thread"), ValueError,
     "start_method"),
    (lambda: D.run_on_ranks(42, 2), TypeError, "fn must be a function"),
    (lambda: D.expected_collectives("zero3", 10), ValueError, "unknown strategy"),
    (lambda: D.zero_partition([1, 2], 0), ValueError, "world_size"),
    (lambda: D.zero_partition([1, -2], 2), ValueError, "numels"),
    (lambda: D.step_time("7e9", 1e3, 8, 0, "NVLink 4"), TypeError, "num_parameters"),
    (lambda: D.step_time(7e9, 1e3, 0, 0, "NVLink 4"), ValueError, "num_gpus"),
    (lambda: D.format_step_times(7e9, 1e3, 8, links="NVLink 4"), TypeError, "list of link"),
    (lambda: D.measure_strategies(2, config={"dim": 8}), TypeError, "TrainConfig"),
    (lambda: D.plot_max_parameters_vs_gpus(max_gpus=0), ValueError, "max_gpus"),
    (lambda: D.predicted_rank_bytes("zero2", CONFIG, 2), ValueError, "unknown strategy"),
    (lambda: D.run_on_ranks(D.all_reduce_rank_ids, 2, threading.Lock()), TypeError, "picklable"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_batch_that_does_not_split_evenly_is_refused_by_the_rank():
    with pytest.raises(D.DistributedRunError, match="multiples of world_size"):
        D.measure_strategies(4, ["ddp"], D.TrainConfig(batch=6))


# --- tables and figures ----------------------------------------------------------------------

LINKS_70B = ["NVLink 4", "InfiniBand NDR x8", "InfiniBand NDR"]


def test_stage_step_times_is_what_the_table_and_the_figure_show():
    rows = D.stage_step_times(70e9, 4096, 1024, LINKS_70B)
    assert [row.stage for row in rows] == list(D.ZERO_STAGES)
    for row in rows:
        assert row.memory == D.bytes_per_gpu(70e9, 1024, row.stage, "adamw",
                                             "mixed_bf16_grads").total
        assert row.sent == D.communication_bytes_per_gpu(70e9, 1024, row.stage,
                                                         "mixed_bf16_grads")
        assert list(row.times) == LINKS_70B
        for link, t in row.times.items():
            assert t == D.step_time(70e9, 4096, 1024, row.stage, link)
        assert row.compute == pytest.approx(6 * 70e9 * 4096 / (0.5 * 989.4e12))
    # A LinkSpec is as good as its name.
    by_spec = D.stage_step_times(70e9, 4096, 1024, [lookup_link(n) for n in LINKS_70B])
    assert by_spec == rows


def test_tables_fit_a_notebook_line(runs):
    tables = [D.format_stage_table(7e9, 8, 80 * GB),
              D.format_step_times(70e9, 4096, 1024, LINKS_70B),
              D.format_rank_bytes(runs[4], CONFIG), D.format_collectives(runs[4])]
    for table in tables:
        assert max(len(line) for line in table.splitlines()) <= 100, table


def test_the_step_time_table_shows_each_stages_numbers():
    lines = D.format_step_times(70e9, 4096, 1024, LINKS_70B).splitlines()
    ddp, zero3 = lines[1], lines[4]
    assert "1120.0" in ddp and "280 GB" in ddp and "5.59 s (3.28 s)" in ddp
    assert "420 GB" in zero3 and "8.39 s (4.91 s)" in zero3


def test_plot_max_parameters_vs_gpus_draws_a_line_per_stage():
    import matplotlib.pyplot as plt

    fig = D.plot_max_parameters_vs_gpus(80 * GB, max_gpus=64)
    try:
        ax = fig.axes[0]
        stages = [line for line in ax.get_lines() if line.get_label() in D.STAGE_NAMES.values()]
        assert [line.get_label() for line in stages] == list(D.STAGE_NAMES.values())
        zero3 = stages[-1].get_ydata()
        assert len(zero3) == 7 and zero3[-1] == pytest.approx(64 * 80 / 16)  # B parameters
        assert ax.get_xscale() == ax.get_yscale() == "log"
    finally:
        plt.close(fig)


def test_plot_step_times_stacks_compute_and_exposed_communication():
    import matplotlib.pyplot as plt

    fig = D.plot_step_times(70e9, 4096, 1024, LINKS_70B)
    try:
        assert len(fig.axes) == 3
        rows = D.stage_step_times(70e9, 4096, 1024, LINKS_70B)
        for ax, link in zip(fig.axes, LINKS_70B, strict=True):
            assert ax.get_title() == f"over {link}"
            compute, exposed, too_big = (ax.containers[i].patches for i in range(3))
            assert [p.get_width() for p in compute] == pytest.approx([r.compute for r in rows])
            assert [p.get_width() for p in exposed] == pytest.approx(
                [r.times[link].exposed for r in rows])
            # Only ZeRO-3's 70B training state fits in 80 GB: the others are hatched.
            assert [p.get_width() > 0 for p in too_big] == [True, True, True, False]
        assert len(fig.legends[0].get_texts()) == 3
    finally:
        plt.close(fig)


# --- the notebook starts the ranks' fork server itself ---------------------------------------

def test_the_notebook_preloads_what_the_ranks_import():
    import ast
    import json

    nb = json.loads((ROOT / "notebooks" / "11_distributed_training.ipynb").read_text())
    source = next("".join(c["source"]) for c in nb["cells"]
                  if "set_forkserver_preload" in "".join(c["source"]))
    call = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "set_forkserver_preload")
    # A fork server already running ignores a later preload list: the two must agree.
    assert ast.literal_eval(call.args[0]) == D._PRELOAD


# --- exercises --------------------------------------------------------------------------------

FLOPS = peak_flops("H100 SXM", "bf16") * 0.5  # H100 at MFU 0.5
GRADS = 7e9 * 2  # bf16 gradients of the 7B model of exercises 3 to 5
RING = 2 * 7 / 8  # a ring all-reduce over 8 GPUs sends 2 (N-1)/N times the payload


def _answers():
    return {
        1: 13e9 * (4 + 12 / 16) / 1e9,
        2: 80e9 / (2 + (4 + 2 + 8) / 8),
        3: RING * GRADS,
        4: RING * GRADS / 50e9,
        5: RING * 2 / 50e9 * FLOPS / 4,
    }


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_each_exercise_accepts_its_answer_and_three_figures(number):
    answer = _answers()[number]
    assert D.EXERCISES.feedback(number, answer).correct is True
    assert D.EXERCISES.feedback(number, float(f"{answer:.3g}")).correct is True
    assert D.EXERCISES.feedback(number, None).correct is None


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_each_exercise_says_what_it_wants_and_names_junk(number, capsys):
    wants = D.EXERCISES.exercises[number].wants
    assert wants.startswith("a number of") and "within 2%" in wants
    assert "got nan (not a number)" in D.EXERCISES.feedback(number, math.nan).message
    assert "got the text 'many'" in D.EXERCISES.feedback(number, "many").message
    assert "expected a number" in D.EXERCISES.feedback(number, [1, 2]).message
    D.EXERCISES.check(number, None)  # the student's stub: to do, with what to answer
    out = capsys.readouterr().out
    assert out.startswith("⏳ [to do]") and "Wanted: a number of" in out


# Each typical mistake, made: (exercise, the mistaken answer, words its hint must contain).
MISTAKES = [
    (1, 13e9 * 16 / 1e9, "plain DDP"),
    (1, 13e9 * (4 + 4 + 8 / 16) / 1e9, "that is ZeRO-1"),  # gradients left whole
    (1, 13e9 * 16 / 16 / 1e9, "ZeRO-3"),
    (1, 13e9 * (4 + 12 / 16), "in bytes"),
    (1, 13e9 * (4 + 12 / 16) / 2**30, "GiB"),
    (2, 80e9 / (2 + 2 + 12 / 8), "ZeRO-1 here"),
    (2, 80e9 / (4 + 12 / 8), "ZeRO-2 in fp32"),  # 4-byte weights and gradients, no copy
    (2, 80e9 / (2 + (4 + 4 + 8) / 8), "fp32 gradients"),
    (2, 80e9 / (4 + 2 + (2 + 8) / 8), "master weights"),
    (2, 80e9 / 16, "plain DDP"),
    (2, 8 * 80e9 / 16, "ZeRO-3"),
    (3, GRADS, "2 (N-1)/N times it"),
    (3, 2 * GRADS, "(N-1)/N"),  # the ring's factor taken as 2
    (3, 7e9 * 4, "fp32 gradients' size"),
    (3, 7 / 8 * GRADS, "reduce-scatter alone"),
    (3, RING * 7e9 * 4, "2 bytes each, not 4"),
    (3, RING * GRADS * 8, "in bits"),
    (4, RING * GRADS / 450e9, "NVLink"),
    (4, RING * GRADS / 400e9, "bits: 50e9 bytes"),
    (4, RING * GRADS * 8 / 50e9, "bytes as bits"),
    (4, RING * GRADS / 25e9, "do not halve"),  # 400 Gb/s halved as if it were both ways
    (4, RING * 7e9 * 4 / 50e9, "2-byte bf16"),
    (4, GRADS / 50e9, "check that exercise 3 passes"),
    (4, 2 * GRADS / 50e9, "check that exercise 3 passes"),
    (4, 7 / 8 * GRADS / 50e9, "not (N-1)/N"),
    (5, RING * 2 / 50e9 * FLOPS / 6, "backward pass only"),
    (5, RING * 2 / 50e9 * FLOPS / 0.5 / 4, "leave out the MFU"),
    (5, RING * 4 / 50e9 * FLOPS / 4, "4-byte"),
    (5, RING * 2 / 50e9 * (FLOPS / 0.5) / 0.5 / 4, "not the peak divided by it"),
    (5, 7 / 8 * 2 / 50e9 * FLOPS / 4, "reduce-scatter"),
    (5, 2 * 2 / 50e9 * FLOPS / 4, "for 8 GPUs it is 2 (N-1)/N"),
    (5, D.tokens_to_hide_communication(70e9, 1024, 0, "InfiniBand NDR"), "1024 GPUs"),
    (5, RING * 2 / 400e9 * FLOPS / 4, "bits"),
    (5, RING * 2 / 450e9 * FLOPS / 4, "NVLink"),
]


@pytest.mark.parametrize("number, mistake, words", MISTAKES)
def test_typical_mistakes_get_their_hint(number, mistake, words):
    feedback = D.EXERCISES.feedback(number, mistake)
    assert feedback.correct is False and words in feedback.message, feedback.message


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_no_two_different_mistakes_get_the_same_hint_by_accident(number):
    # A hint names its mistake: two mistakes that give different answers get different hints,
    # unless the hint names both (exercise 3's 2 x gradients, exercise 4's stale bytes).
    verdicts = {}
    for n, mistake, words in MISTAKES:
        if n == number:
            verdicts.setdefault(D.EXERCISES.feedback(n, mistake).message, set()).add(words)
    shared = {message: words for message, words in verdicts.items() if len(words) > 1}
    assert all(all(w in message for w in words) for message, words in shared.items())


def test_tokens_to_hide_ddp_is_the_flops_over_bandwidth_ratio():
    tokens = D.tokens_to_hide_communication(70e9, 1024, 0, "InfiniBand NDR")
    assert tokens == pytest.approx(1023 / 1024 * FLOPS / 50e9)  # independent of the model size
    assert D.tokens_to_hide_communication(7e9, 1024, 0, "InfiniBand NDR") == pytest.approx(tokens)
    # ZeRO-1/2 gather the updated weights during the next forward: a finite bound too.
    assert D.tokens_to_hide_communication(70e9, 1024, 1, "InfiniBand NDR") < math.inf
    at = D.step_time(70e9, tokens, 1024, 0, "InfiniBand NDR")
    assert at.exposed == pytest.approx(0, abs=1e-9)


# --- last: it stops the fork server, which the next group in this process starts again -------

def _helper_processes() -> list[str]:
    """Command lines of this process's children that are multiprocessing's helpers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):  # not a process, exited meanwhile, or not ours to read
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and "multiprocessing" in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_stop_workers_leaves_no_helper_process_behind():
    # Jupyter terminates a kernel's children before it exits and waits for each: the resource
    # tracker ignores SIGTERM, so a kernel that leaves it running takes seconds to shut down.
    D.run_on_ranks(D.all_reduce_rank_ids, 2)
    assert any("forkserver" in c for c in _helper_processes())
    D.stop_workers()
    assert _helper_processes() == []
    D.stop_workers()  # stopping twice is harmless
    # A notebook run again from the top after stop_workers: the next group starts them again.
    assert D.run_on_ranks(D.all_reduce_rank_ids, 2) == [1.0, 1.0]
    D.stop_workers()
    assert _helper_processes() == []
