"""Tests for lecture_utils.training (notebook 07) and data/make_tokens.py."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import math
import os
import pickle
import random
import tempfile
import unittest.mock
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture_utils import training as trn
from lecture_utils.optimizers import AdaGrad
from lecture_utils.training import (
    CHECKPOINT_ITEMS,
    DATA_DIR,
    EXERCISES,
    TOKEN_DTYPE,
    TOKENS_PATH,
    VOCAB_SIZE,
    ByteModel,
    CheckpointError,
    DataChecksumError,
    SimulatedCrash,
    advise_random_access,
    allocated_bytes,
    content_sha256,
    count_windows,
    crash_halfway_through_save,
    create_sparse_file,
    empirical_entropies,
    get_batch,
    get_rng_states,
    load_checkpoint,
    load_tokens,
    make_generator,
    next_token_loss,
    read_checkpoint,
    read_expected_sha256,
    resident_memory_bytes,
    save_checkpoint,
    seed_everything,
    set_rng_states,
    sha256_of_file,
    train,
    training_step,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# Randomness


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_seed_everything_repeats_every_source():
    seed_everything(7)
    first = _draws()
    seed_everything(7)
    assert _draws() == first
    seed_everything(8)
    assert _draws() != first


@pytest.mark.parametrize("seed, error, match", [
    (1.5, TypeError, "must be an int"),
    (True, TypeError, "must be an int"),
    (-1, ValueError, r"\[0, 2\*\*32\)"),
    (2**32, ValueError, r"\[0, 2\*\*32\)"),
])
def test_seed_everything_rejects_bad_seeds(seed, error, match):
    with pytest.raises(error, match=match):
        seed_everything(seed)


def test_make_generator_is_independent_of_the_global_one():
    a = torch.rand(3, generator=make_generator(3))
    torch.manual_seed(123)
    torch.rand(10)  # move the global generator: make_generator must not care
    assert torch.equal(a, torch.rand(3, generator=make_generator(3)))
    with pytest.raises(TypeError, match="must be an int"):
        make_generator("3")


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_make_generator_rejects_seeds_out_of_range(seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got"):
        make_generator(seed)
    assert make_generator(2**64 - 1).initial_seed() == 2**64 - 1  # the whole range is usable


def test_rng_states_round_trip_and_are_weights_only_safe(tmp_path):
    generator = make_generator(0)
    torch.rand(5, generator=generator)
    random.gauss(0, 1)  # leaves a cached gauss_next in Python's state
    np.random.randn()  # and a cached Gaussian in NumPy's
    states = get_rng_states(generator)
    expected = (_draws(), random.gauss(0, 1), torch.rand(2, generator=generator))
    torch.save(states, tmp_path / "states.pt")
    loaded = torch.load(tmp_path / "states.pt", weights_only=True)
    seed_everything(99)
    fresh = make_generator(99)
    set_rng_states(loaded, fresh)
    again = (_draws(), random.gauss(0, 1), torch.rand(2, generator=fresh))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_mps_random_state_is_saved_and_restored_where_there_is_mps():
    assert get_rng_states()["torch_mps"] is None  # no MPS here: an empty entry
    mps_state = torch.arange(8, dtype=torch.uint8)
    with (
        unittest.mock.patch.object(torch.backends.mps, "is_available", return_value=True),
        unittest.mock.patch.object(torch.mps, "get_rng_state", return_value=mps_state),
        unittest.mock.patch.object(torch.mps, "set_rng_state") as set_mps_state,
    ):
        states = get_rng_states()
        assert torch.equal(states["torch_mps"], mps_state)
        set_rng_states(states)
        set_mps_state.assert_called_once_with(mps_state)
        set_mps_state.reset_mock()
        set_rng_states({**states, "torch_mps": None})  # saved without MPS: nothing to restore
        set_mps_state.assert_not_called()


def test_set_rng_states_without_saved_generator_state_raises():
    states = get_rng_states(None)
    with pytest.raises(ValueError, match="no data generator state"):
        set_rng_states(states, make_generator(0))


# ----------------------------------------------------------------------------------------------
# Data


def _load_make_tokens_script():
    spec = importlib.util.spec_from_file_location("make_tokens", DATA_DIR / "make_tokens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_token_file_matches_its_script_and_checksum(capsys):
    script = _load_make_tokens_script()
    assert script.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    corpus = (DATA_DIR / "corpus.txt").read_bytes()
    tokens = load_tokens()
    assert isinstance(tokens, np.memmap) and tokens.dtype == TOKEN_DTYPE
    assert bytes(tokens.astype(np.uint8)) == corpus  # byte-level: token i is byte i
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir() if p.is_file())
    assert total < 1_000_000  # the committed data stays small


def test_sha256_helpers(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256("abc")
    assert sha256_of_file(path, chunk_bytes=1) == digest
    (tmp_path / "x.sha256").write_text(f"{digest.upper()}  x.bin\n")
    assert read_expected_sha256(tmp_path / "x.sha256") == digest
    (tmp_path / "bad.sha256").write_text("not-a-digest\n")
    with pytest.raises(ValueError, match="64-digit SHA-256"):
        read_expected_sha256(tmp_path / "bad.sha256")
    with pytest.raises(FileNotFoundError, match="make_tokens.py"):
        read_expected_sha256(tmp_path / "missing.sha256")


def test_load_tokens_rejects_damaged_missing_and_odd_files(tmp_path):
    damaged = tmp_path / "tokens.bin"
    data = bytearray(TOKENS_PATH.read_bytes())
    data[10] ^= 1
    damaged.write_bytes(bytes(data))
    expected = read_expected_sha256(TOKENS_PATH.with_suffix(".sha256"))
    with pytest.raises(DataChecksumError, match=r"tokens\.bin has SHA-256 .*make_tokens\.py"):
        load_tokens(damaged, expected_sha256=expected)
    with pytest.raises(FileNotFoundError, match="make_tokens.py"):
        load_tokens(tmp_path / "nothing.bin")
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"abc")
    with pytest.raises(ValueError, match="whole number"):
        load_tokens(odd, expected_sha256=sha256_of_file(odd))


def test_count_windows():
    assert count_windows(1000, 8) == 992
    assert count_windows(8, 8) == 0
    with pytest.raises(ValueError, match="positive"):
        count_windows(1000, 0)


def test_get_batch_shapes_shift_and_determinism():
    data = np.arange(100, dtype=TOKEN_DTYPE)
    x, y = get_batch(data, 5, 7, "cpu", make_generator(0))
    assert x.shape == y.shape == (5, 7) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # consecutive integers: targets are the next tokens
    assert int(y.max()) <= 99
    x2, _ = get_batch(data, 5, 7, torch.device("cpu"), make_generator(0))
    assert torch.equal(x, x2)
    # Every start position, including the last one (N - T - 1), is reachable.
    starts = {int(s) for _ in range(200) for s in get_batch(data, 8, 98, "cpu",
                                                            make_generator(_))[0][:, 0]}
    assert starts == {0, 1}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive"),
    ({"context_length": 2.0}, TypeError, "context_length must be an int"),
    ({"context_length": 100}, ValueError, "cannot fill one window"),
    ({"data": np.zeros((4, 4), dtype=TOKEN_DTYPE)}, ValueError, "1-D array"),
    ({"data": list(range(100))}, TypeError, "data must be a 1-D NumPy array.*got list"),
    ({"data": torch.arange(100)}, TypeError, r"data must be a NumPy array.*data\.numpy\(\)"),
    ({"data": np.arange(100.0)}, TypeError, "data must hold integer token ids"),
    ({"generator": None}, TypeError, "generator must be a torch.Generator.*got NoneType"),
    ({"generator": 0}, TypeError, "generator must be a torch.Generator.*make_generator"),
])
def test_get_batch_rejects_bad_input(kwargs, error, match):
    args = {"data": np.arange(100, dtype=TOKEN_DTYPE), "batch_size": 2, "context_length": 4,
            "device": "cpu", "generator": make_generator(0)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        get_batch(**args)


def test_get_batch_needs_a_cpu_generator():
    fake = unittest.mock.Mock(spec=torch.Generator)
    fake.device = torch.device("meta")
    with pytest.raises(ValueError, match="on the CPU"):
        get_batch(np.arange(100, dtype=TOKEN_DTYPE), 2, 4, "cpu", fake)


def test_memmap_of_a_sparse_file_costs_little_memory(tmp_path):
    path = tmp_path / "big.bin"
    size = 10**9
    create_sparse_file(path, size)
    assert path.stat().st_size == size
    assert allocated_bytes(path) < size // 1000
    before = resident_memory_bytes()
    data = np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
    assert advise_random_access(data) in (True, False)
    x, _ = get_batch(data, 4, 64, "cpu", make_generator(0))
    growth = resident_memory_bytes() - before
    assert growth < size // 100 and int(x.sum()) == 0
    del data
    assert advise_random_access(np.zeros(3)) is False  # not a memmap: nothing to advise
    with pytest.raises(FileExistsError):
        create_sparse_file(path, size)
    with pytest.raises(ValueError, match="positive"):
        create_sparse_file(tmp_path / "empty.bin", 0)


def test_sample_sparse_file_reads_little_of_a_big_file(tmp_path):
    sampled = trn.sample_sparse_file(tmp_path, 10**9, num_batches=2, batch_size=4,
                                     context_length=64)
    assert sampled.num_tokens == 10**9 // TOKEN_DTYPE.itemsize
    assert sampled.disk_bytes < 10**6 and sampled.bytes_needed == 2 * 4 * 65 * 2
    assert set(sampled.rss_growth) == {False, True}
    assert all(growth < 10**7 for growth in sampled.rss_growth.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big_tokens_False.bin",
                                                          "big_tokens_True.bin"]


def test_uint16_tokens_index_a_vocabulary_of_65536():
    assert np.iinfo(TOKEN_DTYPE).max + 1 == 65_536  # the largest vocabulary uint16 can index


def test_resident_memory_bytes_is_plausible():
    assert 1_000_000 < resident_memory_bytes() < 1_000_000_000_000


def test_a_uniform_guess_over_256_bytes_costs_ln_256_nats():
    assert math.isclose(math.log(VOCAB_SIZE), 5.545, abs_tol=5e-4)  # the notebook prints 5.545


def test_empirical_entropies():
    h1, h2 = empirical_entropies(np.array([0, 1] * 50))
    assert math.isclose(h1, math.log(2)) and math.isclose(h2, 0.0, abs_tol=1e-12)
    h1, h2 = empirical_entropies(load_tokens())
    assert h2 < h1 < math.log(VOCAB_SIZE)
    with pytest.raises(ValueError, match="at least 2"):
        empirical_entropies(np.array([3]))


# ----------------------------------------------------------------------------------------------
# The model and the loop


def test_byte_model_shapes_parameters_and_init_generator():
    model = ByteModel(8, 2, generator=make_generator(0))
    out = model(torch.zeros(3, 5, dtype=torch.int64))
    assert out.shape == (3, 5, VOCAB_SIZE)
    assert sum(p.numel() for p in model.parameters()) == 2 * VOCAB_SIZE * 8 + 2 * 8 * 8
    same = ByteModel(8, 2, generator=make_generator(0))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    with pytest.raises(ValueError, match="num_layers"):
        ByteModel(8, -1)
    with pytest.raises(ValueError, match="dim must be a positive"):
        ByteModel(0, 1)


@pytest.mark.parametrize("bad_id", [VOCAB_SIZE, -1])
def test_byte_model_names_a_token_id_outside_the_vocabulary(bad_id):
    model = ByteModel(4, 0)
    tokens = torch.tensor([[1, 2, bad_id]])
    with pytest.raises(ValueError, match=rf"tokens holds token id {bad_id}, but the vocabulary "
                                         rf"has {VOCAB_SIZE} ids \(0 to {VOCAB_SIZE - 1}\)"):
        model(tokens)
    with pytest.raises(TypeError, match="tokens must hold integer token ids, got dtype"):
        model(torch.zeros(1, 3))


def test_next_token_loss_rejects_bad_targets():
    logits = torch.zeros(2, 3, VOCAB_SIZE)
    with pytest.raises(ValueError, match=r"targets holds token id 256, but the vocabulary has 256"):
        next_token_loss(logits, torch.full((2, 3), 256))
    with pytest.raises(ValueError, match=r"shape logits.shape\[:-1\] = \(2, 3\), got \(3, 2\)"):
        next_token_loss(logits, torch.zeros(3, 2, dtype=torch.int64))


def test_next_token_loss_of_uniform_logits_is_log_vocab():
    logits = torch.zeros(2, 3, VOCAB_SIZE)
    targets = torch.randint(0, VOCAB_SIZE, (2, 3))
    assert math.isclose(next_token_loss(logits, targets).item(), math.log(VOCAB_SIZE),
                        rel_tol=1e-6)


def test_training_step_and_train_lower_the_loss():
    tokens = load_tokens()
    model = ByteModel(16, 1, generator=make_generator(0))
    optimizer = AdaGrad(model.parameters(), lr=0.1)
    x, y = get_batch(tokens, 4, 16, "cpu", make_generator(1))
    loss = training_step(model, optimizer, x, y)
    assert isinstance(loss, float)
    assert all(p.grad is None for p in model.parameters())  # cleared for the next step
    losses = train(model, optimizer, tokens, make_generator(2), steps=40, batch_size=8,
                   context_length=32)
    assert len(losses) == 40 and np.mean(losses[-10:]) < losses[0] - 1.5
    with pytest.raises(ValueError, match="steps must be a positive"):
        train(model, optimizer, tokens, make_generator(2), steps=0, batch_size=8,
              context_length=32)


def test_first_differing_step():
    assert trn.first_differing_step([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) is None
    assert trn.first_differing_step([1.0, 2.0, 3.0], [1.0, 2.5, 3.0]) == 2
    assert trn.first_differing_step([0.0], [1.0]) == 1
    with pytest.raises(ValueError, match="same length"):
        trn.first_differing_step([1.0], [1.0, 2.0])


def test_moving_average():
    assert trn.moving_average([1, 2, 3, 4], window=2).tolist() == [1.5, 2.5, 3.5]
    assert len(trn.moving_average(list(range(150)))) == 141
    with pytest.raises(ValueError, match="at least window=3"):
        trn.moving_average([1.0, 2.0], window=3)
    with pytest.raises(ValueError, match="window must be a positive int"):
        trn.moving_average([1.0], window=0)


def test_plot_learning_rates_draws_every_run_and_floor():
    import matplotlib.pyplot as plt

    runs = {0.01: list(np.linspace(6, 3, 30)), 1.0: list(np.linspace(6, 500, 30))}
    floors = {"uniform guess": 5.5, "unigram": 3.0, "bigram floor": 2.3}
    fig = trn.plot_learning_rates(runs, floors)
    try:
        ax_all, ax_zoom = fig.axes
        assert len(ax_all.get_lines()) == 2 and ax_all.get_yscale() == "log"
        assert len(ax_zoom.get_lines()) == 2 + 3  # the runs, and a line per floor
        assert [t.get_text().strip() for t in ax_zoom.texts] == list(floors)
        assert ax_zoom.texts[-1].get_va() == "top"  # the lowest floor's label is below its line
        assert [t.get_text() for t in ax_all.get_legend().get_texts()] == ["lr = 0.01", "lr = 1.0"]
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="at least one run"):
        trn.plot_learning_rates({}, floors)


def test_plot_resumes_draws_each_resumed_run_after_the_checkpoint():
    import matplotlib.pyplot as plt

    full = [5.0 - 0.05 * i for i in range(60)]
    resumes = {"everything": full, "no optimizer state": full[:26] + [9.0] * 34}
    fig = trn.plot_resumes(full, resumes, stop_at=25)
    try:
        (ax,) = fig.axes
        lines = ax.get_lines()
        assert len(lines) == 1 + 2 + 1  # uninterrupted, two resumes, the checkpoint marker
        assert len(lines[1].get_xdata()) == 35 and lines[1].get_xdata()[0] == 26
        assert ax.texts[0].get_text() == "checkpoint"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="stop_at must be a step inside the run"):
        trn.plot_resumes(full, resumes, stop_at=60)


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _run(init_seed=0, data_seed=1):
    model = ByteModel(8, 1, generator=make_generator(init_seed))
    return model, AdaGrad(model.parameters(), lr=0.1), make_generator(data_seed)


_LOOP = {"batch_size": 4, "context_length": 16}


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    tokens = load_tokens()
    model, optimizer, data_order = _run()
    full = train(model, optimizer, tokens, data_order, steps=6, **_LOOP)
    model, optimizer, data_order = _run()
    first = train(model, optimizer, tokens, data_order, steps=3, **_LOOP)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 3, data_order, extra={"note": "x"})
    model, optimizer, data_order = _run(5, 6)
    assert load_checkpoint(tmp_path / "c.pt", model, optimizer, data_order) == 3
    assert first + train(model, optimizer, tokens, data_order, steps=3, **_LOOP) == full
    assert read_checkpoint(tmp_path / "c.pt")["extra"] == {"note": "x"}


def test_crash_during_save_keeps_the_old_checkpoint(tmp_path):
    model, optimizer, data_order = _run()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, optimizer, 1, data_order)
    with (
        unittest.mock.patch.object(torch, "save", crash_halfway_through_save),
        pytest.raises(SimulatedCrash),
    ):
        save_checkpoint(path, model, optimizer, 2, data_order)
    assert read_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # the temporary file is gone


def test_save_checkpoint_rejects_bad_input(tmp_path):
    model, optimizer, _data_order = _run()
    path = tmp_path / "c.pt"
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        save_checkpoint(path, model, optimizer, -1)
    with pytest.raises(FileNotFoundError, match="create it first"):
        save_checkpoint(tmp_path / "no_dir" / "c.pt", model, optimizer, 0)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got OrderedDict: "
                                        r"pass the model itself, not its state_dict\(\)"):
        save_checkpoint(path, model.state_dict(), optimizer, 0)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got NoneType"):
        save_checkpoint(path, model, None, 0)
    with pytest.raises(TypeError, match="data_generator must be a torch.Generator or None"):
        save_checkpoint(path, model, optimizer, 0, data_generator=1)
    with pytest.raises(TypeError, match=r"cannot checksum a float64 \(at \['extra'\]\['lr'\]\)"):
        save_checkpoint(path, model, optimizer, 0, extra={"lr": np.float64(0.1)})
    assert list(tmp_path.iterdir()) == []  # each was refused before any file was made


def test_load_checkpoint_rejects_bad_arguments(tmp_path):
    model, optimizer, _ = _run()
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        load_checkpoint(tmp_path / "c.pt", "model")
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer or None"):
        load_checkpoint(tmp_path / "c.pt", model, model)
    with pytest.raises(TypeError, match="data_generator must be a torch.Generator or None"):
        load_checkpoint(tmp_path / "c.pt", model, optimizer, data_generator=0)


def test_a_directory_is_not_a_checkpoint_file(tmp_path):
    model, optimizer, _ = _run()
    (tmp_path / "runs").mkdir()
    with pytest.raises(IsADirectoryError, match="'runs' is a directory, not a checkpoint file"):
        save_checkpoint(tmp_path / "runs", model, optimizer, 0)
    with pytest.raises(CheckpointError, match="'runs' is a directory, not a checkpoint file"):
        load_checkpoint(tmp_path / "runs", model, optimizer)
    assert list((tmp_path / "runs").iterdir()) == []


def test_save_removes_stale_temp_files_of_this_checkpoint_only(tmp_path):
    model, optimizer, _ = _run()
    stale = [".c.pt.abcd1234.tmp", ".c.pt.x_9.tmp"]  # left by saves of c.pt that were killed
    others = [
        ".c.pt.x.pt.abcd1234.tmp",  # a temp file of the checkpoint named "c.pt.x.pt"
        ".d.pt.abcd1234.tmp",  # of d.pt
        "c.pt.abcd1234.tmp",  # not hidden: not one of save_checkpoint's
        ".c.pt.abcd1234.tmp.bak",
        ".c.pt..tmp",
        "notes.txt",
    ]
    for name in stale + others:
        (tmp_path / name).write_bytes(b"x")
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ["c.pt"])
    assert read_checkpoint(tmp_path / "c.pt")["step"] == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_checkpoint_gets_the_mode_open_would_give(tmp_path):
    model, optimizer, _ = _run()
    for umask in (0o022, 0o077, 0o002):
        old_umask = os.umask(umask)
        try:
            save_checkpoint(tmp_path / "c.pt", model, optimizer, 0)  # mkstemp alone: 0o600
            (tmp_path / f"plain_{umask:o}").write_bytes(b"")  # a file made with open()
        finally:
            os.umask(old_umask)
        mode = (tmp_path / "c.pt").stat().st_mode & 0o777
        assert mode == 0o666 & ~umask == (tmp_path / f"plain_{umask:o}").stat().st_mode & 0o777
    assert os.umask(old_umask) == old_umask  # the umask save_checkpoint read was put back


def _refusal(path: Path, access: int, target: str, error: OSError):
    """Real permissions where they apply; a mocked refusal where they do not (root)."""
    if os.access(path, access):  # root reads and writes anything: play the refusal instead
        return unittest.mock.patch(target, side_effect=error)
    return contextlib.nullcontext()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_unwritable_directory_error_names_the_directory(tmp_path):
    model, optimizer, _ = _run()
    locked = tmp_path / "locked"
    locked.mkdir()
    temp_name = str(locked / ".c.pt.abcd1234.tmp")
    locked.chmod(0o555)
    try:
        denied = PermissionError(errno.EACCES, "Permission denied", temp_name)
        with (
            _refusal(locked, os.W_OK, "tempfile.mkstemp", denied),
            pytest.raises(PermissionError) as info,
        ):
            save_checkpoint(locked / "c.pt", model, optimizer, 0)
    finally:
        locked.chmod(0o755)
    message = str(info.value)
    assert f"cannot save checkpoint 'c.pt' into directory '{locked}': permission denied" in message
    assert "Choose a writable directory, or fix its permissions" in message
    assert ".tmp" not in message
    read_only = OSError(errno.EROFS, "Read-only file system", temp_name)
    with (
        unittest.mock.patch("tempfile.mkstemp", side_effect=read_only),
        pytest.raises(PermissionError, match="its file system is read-only"),
    ):
        save_checkpoint(locked / "c.pt", model, optimizer, 0)
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_unreadable_checkpoint_says_permission_denied(tmp_path):
    model, optimizer, _ = _run()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, optimizer, 0)
    path.chmod(0)
    try:
        denied = PermissionError(errno.EACCES, "Permission denied", str(path))
        with (
            _refusal(path, os.R_OK, "lecture_utils.training.open", denied),
            pytest.raises(CheckpointError, match="'c.pt' cannot be read: permission denied"),
        ):
            load_checkpoint(path, model, optimizer)
    finally:
        path.chmod(0o644)


def test_damaged_checkpoints_raise_clear_errors(tmp_path):
    model, optimizer, data_order = _run()
    good = tmp_path / "good.pt"
    save_checkpoint(good, model, optimizer, 0)  # no data generator saved
    raw = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    weight = model.embedding.weight.detach().numpy().tobytes()[:32]
    flipped = bytearray(raw)
    flipped[raw.find(weight) + 1] ^= 0x10
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    pickled = bytearray(raw)  # a byte of the pickle itself: the zip's CRC-32 catches it
    pickled[raw.find(b"model_layout") + 2] ^= 0x01
    (tmp_path / "bad_pickle.pt").write_bytes(bytes(pickled))
    torch.save({"step": 1}, tmp_path / "foreign.pt")
    torch.save({"numpy": np.zeros(2)}, tmp_path / "unsafe.pt")
    torch.save({"step": 1}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"step": 1}, f)
    (tmp_path / "random.pt").write_bytes(b"\x13" + np.random.default_rng(0).bytes(1000))
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:
        archive.writestr("notes/readme.txt", "not a checkpoint")
    torch.save({"format": 1, "step": 3}, tmp_path / "format_1.pt")
    cases = {
        "cut.pt": "truncated or corrupted",
        "empty.pt": "is empty",
        "flipped.pt": "do not match the SHA-256",
        "bad_pickle.pt": "truncated or corrupted",
        "foreign.pt": "not a checkpoint written by save_checkpoint",
        "unsafe.pt": "refuses to unpickle",
        "legacy.pt": "is a plain pickle, not a zip archive: save_checkpoint did not write it",
        "pickled.pt": "is a plain pickle, not a zip archive: save_checkpoint did not write it",
        "random.pt": r"is not a PyTorch checkpoint \(not a zip archive",
        "other.pt": r"is a zip archive, but not one torch.save writes \(it holds no data.pkl\)",
        "format_1.pt": "has format 1, this code reads format 2",
        "missing.pt": "does not exist",
    }
    for name, problem in cases.items():
        with pytest.raises(CheckpointError, match=problem) as info:
            load_checkpoint(tmp_path / name, model, optimizer)
        message = str(info.value)
        assert f"'{name}'" in message and str(tmp_path) not in message  # names the file only
        assert info.value.path == tmp_path / name
        assert "re-save" not in message.lower()  # never advice for a file save_checkpoint wrote
    with pytest.raises(CheckpointError, match="holds no data generator state"):
        load_checkpoint(good, model, optimizer, data_generator=data_order)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(good, ByteModel(4, 1), None)


def test_checkpoint_format_is_checked(tmp_path):
    model, optimizer, _ = _run()
    path = tmp_path / "c.pt"
    with unittest.mock.patch("lecture_utils.training.CHECKPOINT_FORMAT", 99):
        save_checkpoint(path, model, optimizer, 0)
    with pytest.raises(CheckpointError, match="has format 99"):
        read_checkpoint(path)


def test_checkpoint_records_optimizer_class_and_model_layout(tmp_path):
    model, optimizer, _ = _run()
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 0)
    contents = read_checkpoint(tmp_path / "c.pt")
    assert contents["optimizer_class"] == "lecture_utils.optimizers.AdaGrad"
    assert contents["model_layout"] == {
        "embedding.weight": {"shape": [VOCAB_SIZE, 8], "dtype": "torch.float32"},
        "layers.0.weight": {"shape": [8, 8], "dtype": "torch.float32"},
        "head.weight": {"shape": [8, VOCAB_SIZE], "dtype": "torch.float32"},
    }
    norm = torch.nn.BatchNorm1d(3)  # buffers are recorded too
    save_checkpoint(tmp_path / "n.pt", norm, torch.optim.AdamW(norm.parameters()), 0)
    contents = read_checkpoint(tmp_path / "n.pt")
    assert contents["optimizer_class"] == "torch.optim.adamw.AdamW"
    assert contents["model_layout"]["num_batches_tracked"] == {"shape": [], "dtype": "torch.int64"}


def _fingerprint(model, optimizer, generator) -> str:
    """One digest of the model, the optimizer and every random state: equal means untouched."""
    return content_sha256({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "rng": get_rng_states(generator)})


def _trained_run(init_seed, data_seed):
    """A run one step in, so that its optimizer has state and its generators have moved."""
    model, optimizer, data_order = _run(init_seed, data_seed)
    train(model, optimizer, load_tokens(), data_order, steps=1, **_LOOP)
    return model, optimizer, data_order


class _Buffered(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.register_buffer("counts", torch.zeros(size))


def test_load_names_what_does_not_fit_and_changes_nothing(tmp_path):
    model, optimizer, data_order = _trained_run(0, 1)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1)  # no data generator state
    deep = ByteModel(8, 3)
    save_checkpoint(tmp_path / "deep.pt", deep, AdaGrad(deep.parameters(), lr=0.1), 1)
    save_checkpoint(tmp_path / "buffered.pt", _Buffered(3), torch.optim.SGD(
        _Buffered(3).parameters(), lr=0.1), 0)
    model, optimizer, data_order = _trained_run(5, 6)
    embedding, layer, head = model.parameters()
    renamed = type("AdaGrad", (torch.optim.SGD,), {"__module__": "elsewhere"})
    cases = [
        ("c.pt", ByteModel(4, 1), None,
         r"does not fit this model: parameter 'embedding.weight' has shape \(256, 4\) here but "
         r"\(256, 8\) in the file"),
        ("deep.pt", model, None,
         "does not fit this model: the file holds 'layers.1.weight', 'layers.2.weight', which "
         "this model lacks"),
        ("c.pt", ByteModel(8, 5), None,
         "does not fit this model: this model has 'layers.1.weight', 'layers.2.weight', "
         "'layers.3.weight' and 1 more, which the file lacks"),
        ("buffered.pt", _Buffered(4), None,
         r"buffer 'counts' has shape \(4,\) here but \(3,\) in the file"),
        ("c.pt", model, torch.optim.SGD(model.parameters(), lr=0.1),
         r"was saved with optimizer AdaGrad, not SGD\. Build a lecture_utils.optimizers.AdaGrad"),
        ("c.pt", model, renamed(model.parameters(), lr=0.1),
         "was saved with optimizer lecture_utils.optimizers.AdaGrad, not elsewhere.AdaGrad"),
        ("c.pt", model, AdaGrad([{"params": [embedding]}, {"params": [layer, head]}], lr=0.1),
         r"holds the state of an optimizer with 1 parameter group\(s\), but this optimizer has 2"),
        ("c.pt", model, AdaGrad([embedding, head], lr=0.1),
         "holds 3 parameters in optimizer parameter group 0, but this optimizer has 2 there"),
    ]
    before = _fingerprint(model, optimizer, data_order)  # after the other models drew their init
    for name, other_model, other_optimizer, problem in cases:
        with pytest.raises(CheckpointError, match=problem):
            load_checkpoint(tmp_path / name, other_model, other_optimizer)
    # The data generator's state is checked before anything is restored, too.
    with pytest.raises(CheckpointError, match="holds no data generator state"):
        load_checkpoint(tmp_path / "c.pt", model, optimizer, data_order)
    assert _fingerprint(model, optimizer, data_order) == before


def _fails_once(fn, before_failing=lambda: None):
    """`fn`, except that its first call does `before_failing()` and then raises."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            before_failing()
            raise RuntimeError("a simulated failure halfway through")
        return fn(*args, **kwargs)

    return wrapper


def test_load_failing_midway_restores_everything(tmp_path):
    model, optimizer, data_order = _trained_run(0, 1)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1, data_order)
    model, optimizer, data_order = _trained_run(5, 6)
    before = _fingerprint(model, optimizer, data_order)
    # The random states fail after the model and the optimizer were loaded, and after the
    # global torch generator was already changed.
    failing_rng = _fails_once(set_rng_states, lambda: torch.manual_seed(123))
    with (
        unittest.mock.patch("lecture_utils.training.set_rng_states", failing_rng),
        pytest.raises(CheckpointError, match=r"could not be restored \(RuntimeError: a simulated "
                                             r"failure halfway through\); the model, optimizer"),
    ):
        load_checkpoint(tmp_path / "c.pt", model, optimizer, data_order)
    assert _fingerprint(model, optimizer, data_order) == before
    failing_optimizer = _fails_once(optimizer.load_state_dict)
    with (
        unittest.mock.patch.object(optimizer, "load_state_dict", failing_optimizer),
        pytest.raises(CheckpointError, match="could not be restored"),
    ):
        load_checkpoint(tmp_path / "c.pt", model, optimizer, data_order)
    assert _fingerprint(model, optimizer, data_order) == before
    assert load_checkpoint(tmp_path / "c.pt", model, optimizer, data_order) == 1  # and it works
    assert _fingerprint(model, optimizer, data_order) != before


def test_flip_exponent_bit_multiplies_or_divides_one_weight_by_4(tmp_path):
    model, optimizer, data_order = _run()
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 0, data_order)
    weight = read_checkpoint(tmp_path / "c.pt")["model"]["embedding.weight"]
    flipped = trn.flip_exponent_bit((tmp_path / "c.pt").read_bytes(), weight)
    (tmp_path / "f.pt").write_bytes(flipped)
    loaded = torch.load(tmp_path / "f.pt", weights_only=True)["model"]["embedding.weight"]
    assert int((loaded != weight).sum()) == 1
    assert loaded[0, 0].item() in (weight[0, 0].item() * 4, weight[0, 0].item() / 4)
    with pytest.raises(CheckpointError, match="do not match the SHA-256"):
        read_checkpoint(tmp_path / "f.pt")
    with pytest.raises(ValueError, match="not in data"):
        trn.flip_exponent_bit(b"nothing here", weight)
    with pytest.raises(TypeError, match="float32 tensor"):
        trn.flip_exponent_bit(flipped, weight.double())


def test_content_sha256():
    a = {"w": torch.ones(3), 0: [1, 2.5, None, "s", (True,)]}
    assert content_sha256(a) == content_sha256({0: [1, 2.5, None, "s", (True,)],
                                                "w": torch.ones(3)})
    assert content_sha256(a) != content_sha256({"w": torch.ones(3).double(), 0: a[0]})
    assert content_sha256(torch.zeros(2, dtype=torch.bfloat16))  # dtypes numpy lacks
    with pytest.raises(TypeError, match=r"cannot checksum a set \(at \['bad'\]\)"):
        content_sha256({"bad": {1, 2}})
    # Subclasses hash like their base, but torch.load(weights_only=True) would refuse them.
    with pytest.raises(TypeError, match=r"cannot checksum a int64 \(at \[0\]\[1\]\)"):
        content_sha256({0: [1, np.int64(2)]})


# ----------------------------------------------------------------------------------------------
# Exercises


def _verdict(number, answer):
    return EXERCISES.feedback(number, answer)


def _wanted(number):
    return EXERCISES.exercises[number].wants


def test_every_exercise_says_what_answer_it_wants():
    assert all(exercise.wants for exercise in EXERCISES.exercises.values())
    assert "exactly" in _wanted(1) and "exactly" in _wanted(2)  # counts are exact


@pytest.mark.parametrize("number", [1, 2])
@pytest.mark.parametrize("junk, says", [
    (float("nan"), "got nan"), ("992", "got the text"), (None, "not answered yet"),
    (992.5, "whole number"), ([992], "expected a number"), (0, "positive"),
])
def test_count_exercises_name_a_bad_answer(number, junk, says):
    assert says in _verdict(number, junk).message


def test_exercise_1():
    n, t = 1000, 8
    assert _verdict(1, n - t).correct is True
    assert _verdict(1, np.int64(n - t)).correct is True and _verdict(1, 992.0).correct is True
    # Each typical slip, made: its answer gets the hint about that slip.
    starts_of_t_token_windows = len(range(0, n - t + 1))  # forgets the target's extra token
    assert "T inputs plus 1 more token" in _verdict(1, starts_of_t_token_windows).message
    assert "run off the end" in _verdict(1, len(range(n))).message  # a start at every token
    assert "non-overlapping chunks" in _verdict(1, len(range(0, n - t + 1, t))).message
    assert "non-overlapping windows" in _verdict(1, len(range(0, n - t, t + 1))).message
    last_start = n - t - 1
    assert "N - T - 1 is the last start" in _verdict(1, last_start).message
    assert "recount" in _verdict(1, 500).message


def test_exercise_1_agrees_with_count_windows():
    assert _verdict(1, count_windows(1000, 8)).correct is True


def test_exercise_2():
    b, t = 32, 1024
    window = np.zeros(t + 1, dtype=np.uint16)  # one window: T inputs and the last target
    right = b * window.nbytes
    assert _verdict(2, right).correct is True
    assert "1 extra token" in _verdict(2, b * window[:-1].nbytes).message
    assert "int64" in _verdict(2, b * window.astype(np.int64).nbytes).message
    assert "int32" in _verdict(2, b * window.astype(np.int32).nbytes).message
    assert "overlap" in _verdict(2, 2 * b * window[:-1].nbytes).message  # inputs, targets apart
    assert "2 bytes each, not 1" in _verdict(2, b * window.astype(np.uint8).nbytes).message
    assert "bits" in _verdict(2, b * window.nbytes * 8).message
    inputs = torch.zeros(b, t, dtype=torch.int64)  # what get_batch returns
    assert "int64 inputs tensor" in _verdict(2, inputs.nbytes).message
    # Exact: an answer 0.1% off is wrong, and no two hints share an answer.
    assert _verdict(2, round(right * 1.001)).correct is False
    hints = trn._BATCH_BYTES_HINTS
    assert right not in hints and len(set(hints.values())) == len(hints)


def test_exercise_3():
    right = {"model weights", "optimizer state", "step", "data generator state"}
    assert _verdict(3, right).correct is True
    assert _verdict(3, sorted(right)).correct is True
    assert "data generator state" in _verdict(3, right - {"data generator state"}).message
    assert "sum_sq_grad" in _verdict(3, right - {"optimizer state"}).message
    assert "zero_grad" in _verdict(3, right | {"gradients"}).message
    assert "dropout" in _verdict(3, right | {"global torch RNG state"}).message
    assert "not one of CHECKPOINT_ITEMS" in _verdict(3, {"weights"}).message
    assert "set of strings" in _verdict(3, "model weights").message
    assert "got nan" in _verdict(3, float("nan")).message
    assert _verdict(3, None).correct is None
    assert right <= set(CHECKPOINT_ITEMS)


def _save_atomic(obj, path):
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise


def _save_in_place(obj, path):
    torch.save(obj, path)


def _save_without_fsync(obj, path):
    path = Path(path)
    temp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _save_leaving_temp(obj, path):
    path = Path(path)
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def _save_swallowing_crash(obj, path):
    try:
        _save_atomic(obj, path)
    except SimulatedCrash:
        pass


def _save_deleting_first(obj, path):
    Path(path).unlink(missing_ok=True)  # "make room" for the new file
    _save_atomic(obj, path)


def _save_without_rename(obj, path):
    temp = Path(path).with_name("checkpoint.tmp")
    with open(temp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _save_across_directories(obj, path):
    with tempfile.TemporaryDirectory() as elsewhere:  # on the same file system here, by luck
        temp = Path(elsewhere) / "checkpoint.tmp"
        try:
            with open(temp, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


def _save_not_implemented(obj, path):
    raise NotImplementedError


def _save_stub(obj, path):
    return None  # the student's stub: writes nothing


def _save_raising(obj, path):
    raise ZeroDivisionError("a bug")


def test_exercise_4():
    assert _verdict(4, _save_atomic).correct is True
    assert "destroyed the previous checkpoint" in _verdict(4, _save_in_place).message
    assert "os.fsync" in _verdict(4, _save_without_fsync).message
    assert "left" in _verdict(4, _save_leaving_temp).message
    assert "swallowed" in _verdict(4, _save_swallowing_crash).message
    assert "old checkpoint was removed" in _verdict(4, _save_deleting_first).message
    assert "no file at path" in _verdict(4, _save_without_rename).message
    assert "own directory" in _verdict(4, _save_across_directories).message
    assert "function" in _verdict(4, 42).message
    assert _verdict(4, _save_not_implemented).correct is None
    assert _verdict(4, None).correct is None
    raised = _verdict(4, _save_raising)
    assert raised.correct is False and "ZeroDivisionError (a bug)" in raised.message


def test_exercise_4_stub_is_not_answered_yet_and_gives_nothing_away(capsys):
    assert _verdict(4, _save_stub).correct is None
    EXERCISES.check(4, _save_stub)
    out = capsys.readouterr().out
    assert out.startswith("⏳") and "os.replace" not in out and "fsync" not in out
