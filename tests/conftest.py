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
