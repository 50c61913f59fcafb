"""The spec's state mix: ReLU(MLP([ReLU(obs_rep); ReLU(goal_rep)])), shared by GLAMOR and GCSL."""

from torch import nn


def state_mix_mlp(embed_dim: int, mix_hidden: int) -> nn.Sequential:
    """Linear(2D -> mix_hidden), LayerNorm, ReLU, Linear(mix_hidden -> D), ReLU: (B, 2D) -> (B, D)."""
    return nn.Sequential(
        nn.Linear(2 * embed_dim, mix_hidden),
        nn.LayerNorm(mix_hidden),
        nn.ReLU(),
        nn.Linear(mix_hidden, embed_dim),
        nn.ReLU(),
    )
