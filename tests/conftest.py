import os
import warnings

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", message=".*glamor._C is not built.*")


@pytest.fixture(autouse=True, scope="session")
def _goal_cache(tmp_path_factory):
    """Goal sets are cached on disk; tests use a fresh cache of their own."""
    os.environ["GLAMOR_CACHE"] = str(tmp_path_factory.mktemp("glamor_cache"))
    yield


_OWN_THREADS = ("tests/ops/", "tests/test_bench_")  # thread counts are what these exercise or time


@pytest.fixture(autouse=True)
def _one_torch_thread(request, monkeypatch):
    """Tests run torch on one thread, in this process and in the processes they start
    (OMP_NUM_THREADS), as `torch_threads=1` runs do. The debug preset's tensors are tiny: on
    this 2-core machine torch's default of 2 threads made a 240-step training 35x slower
    (90 s instead of 2.6 s) whenever another process kept a core busy. Tests that check
    or time thread counts (tests/ops, the benchmarks) keep torch's default."""
    path = request.node.path.as_posix()
    if any(part in path for part in _OWN_THREADS):
        yield
        return
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _cublas_config_left_as_it_was():
    """A test leaves CUBLAS_WORKSPACE_CONFIG as it found it: train() and evaluate_checkpoint()
    promise to, and a value a test left behind turns off, for every later test in the session,
    set_determinism's setting and restoring of it (the branch those tests exercise)."""
    before = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    after = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if after != before and not torch.cuda.is_initialized():  # (once CUDA started, set_determinism keeps it: cuBLAS
        # may be using it; on a GPU machine a deterministic test on device 'auto' starts CUDA)
        if before is None:  # (the next tests start as this one did)
            del os.environ["CUBLAS_WORKSPACE_CONFIG"]
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = before
        pytest.fail(f"the test left CUBLAS_WORKSPACE_CONFIG={after!r} (it was {before!r} before it)")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def tiny_model(num_actions=3, frame_stack=2, hw=(24, 24), hidden=8, seed=0, scale=0.5):
    """A small GlamorModel with weights spread enough that plans differ."""
    from glamor.model import GlamorModel

    torch.manual_seed(seed)
    m = GlamorModel(num_actions, frame_stack, hw, encoder_channels=(4, 4, 4), embed_dim=16,
                    mix_hidden=16, lstm_hidden=hidden)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, scale)
    return m.eval()


def nn_lstm_logits(lstm, cond, prev):
    """A TokenLSTM's teacher-forced logits (B, T, n + 2) computed by torch.nn.LSTM with its weights,
    independent of glamor's own LSTM step: x_t = input_proj([cond; onehot(prev_t)]), where prev
    (B, T) holds the previous action or n for the start row (no action)."""
    B, T = prev.shape
    n = lstm.num_actions
    ref = torch.nn.LSTM(cond.shape[-1], lstm.cell.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(lstm.cell, name))
    onehot = torch.nn.functional.one_hot(prev, n + 1)[..., :n].float()  # (B, T, n)
    x = lstm.input_proj(torch.cat([cond[:, None].expand(B, T, -1), onehot], -1))
    h0, c0 = lstm.initial_state(cond)
    out, _ = ref(x, (h0[None], c0[None]))
    return lstm.head(out), ref


def saved_run(run_dir, cfg=None):
    """A Trainer (closed) that collected one round, took one update and saved a checkpoint in
    `run_dir`; `cfg` defaults to the debug preset, learning from the start."""
    from glamor.config import preset
    from glamor.train import Trainer

    tr = Trainer(cfg or preset("debug", progress=False, learning_starts=0), run_dir)
    tr.collect_round()
    tr.update()
    tr.save()
    tr.close()
    return tr


def random_images(p, c, hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (p, c, *hw), dtype=torch.uint8, generator=g)
