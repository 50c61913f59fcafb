"""GLAMOR on one Atari game and one DeepMind Control task beats the random policy (slow).

Each run uses its CPU preset (`atari_cpu`: Seaquest; `control_cpu`: point_mass/easy; the spec's
protocol at half the frame size), takes under an hour on one core of the 2-core machine, and
evaluates on the held-out goals. Beating random means GLAMOR's 95% interval lies wholly above
the random policy's on the same goals. The README's "Paper benchmarks on a CPU" table holds the
numbers of two runs (seeds 0 and 1) of each (results/paper_cpu.md): Seaquest 0.775 and 0.730
against 0.080, point_mass 0.830 and 0.810 against 0.285.
"""

import pytest

from glamor.config import preset
from glamor.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["atari_cpu", "control_cpu"])
def test_glamor_beats_random_on_held_out_goals(name, tmp_path):
    pytest.importorskip("ale_py" if name == "atari_cpu" else "dm_control")
    results = train(preset(name, progress=False), tmp_path / name)
    assert results["episodes"] >= 200
    assert results["ci95"][0] > results["random_ci95"][1], results  # GLAMOR, with the prior
