import pytest
import torch
from conftest import nn_lstm_logits, random_images, tiny_model

from glamor.model import GlamorModel, take_rows
from glamor.nn.impala import ImpalaEncoder


def test_impala_reference_sizes():
    enc = ImpalaEncoder(4, (80, 104))
    assert enc.flat_dim == 32 * 9 * 12 == 3456
    out = enc(torch.zeros(2, 4, 80, 104, dtype=torch.uint8))
    assert out.shape == (2, 512)
    # each residual block's second GroupNorm starts at zero: the block starts as the identity
    assert all(float(s.blocks[i].norm2.weight.detach().abs().sum()) == 0 for s in enc.stages for i in range(2))


def test_model_shapes_and_tokens():
    m = GlamorModel(num_actions=18, frame_stack=4, image_hw=(80, 104))
    assert (m.end_token, m.pad_token) == (18, 19)
    assert m.idm.head.out_features == 20 and m.idm.cell.hidden_size == 64
    assert m.idm.input_proj.in_features == 512 + 18
    assert m.state_mix[0].in_features == 1024 and m.state_mix[0].out_features == 256
    obs, goal = random_images(3, 4, (80, 104)), random_images(3, 1, (80, 104), seed=1)
    state_mix, obs_rep = m.conditioning(obs, goal)
    assert state_mix.shape == obs_rep.shape == (3, 512)
    inp = m.planning_inputs(obs, goal)
    assert inp.gate_table.shape == (2, 3, 19, 256) and inp.h0.shape == (2, 3, 64)
    assert m.planning_inputs(obs, goal, use_prior=False).num_models == 1


def test_gate_table_matches_the_direct_input_projection():
    m = tiny_model()
    cond = torch.randn(2, 16)
    table = m.idm.gate_table(cond)  # (2, n+1, 4H)
    for a in range(4):
        onehot = torch.zeros(2, 3)
        if a < 3:
            onehot[:, a] = 1
        x = m.idm.input_proj(torch.cat([cond, onehot], 1))
        direct = x @ m.idm.cell.weight_ih.T + m.idm.cell.bias_ih + m.idm.cell.bias_hh
        torch.testing.assert_close(table[:, a], direct, rtol=1e-5, atol=1e-5)


def test_loss_is_masked_nll_summed_over_both_models():
    m = tiny_model()
    obs, goal = random_images(2, 2, (24, 24)), random_images(2, 1, (24, 24), seed=1)
    targets = torch.tensor([[0, 2, 3, 4, 4], [1, 3, 4, 4, 4]])  # actions, END=3, PAD=4
    out = m.loss(obs, goal, targets)
    torch.testing.assert_close(out["loss"], out["idm"] + out["prior"])
    # PAD tokens count in neither model: more of them change nothing
    longer = torch.cat([targets, torch.full((2, 3), 4)], 1)
    for name in ("idm", "prior"):
        torch.testing.assert_close(m.loss(obs, goal, longer)[name], out[name])
    # each model's loss is the mean NLL of the non-PAD tokens under teacher forcing
    state_mix, obs_rep = m.conditioning(obs, goal)
    prev = torch.tensor([[3, 0, 2, 3, 3], [3, 1, 3, 3, 3]])  # start row (n=3), then actions; END/PAD not fed
    keep = targets != 4
    for name, lstm, cond in (("idm", m.idm, state_mix), ("prior", m.prior, obs_rep)):
        logp = torch.log_softmax(lstm(cond, prev), -1)
        manual = -logp.gather(-1, targets[..., None])[..., 0][keep].mean()
        torch.testing.assert_close(out[name], manual)


def test_teacher_forced_lstm_equals_nn_lstm_in_values_and_gradients():
    """TokenLSTM.forward (gate table, unbound steps) against torch.nn.LSTM fed the projected
    inputs x_t = input_proj([cond; onehot(a_{t-1})]) with the same weights and initial state."""
    gen = torch.Generator().manual_seed(3)
    lstm = tiny_model().idm
    B, T, n = 5, 7, lstm.num_actions
    cond = torch.randn(B, 16, generator=gen, requires_grad=True)
    prev = torch.randint(0, n + 1, (B, T), generator=gen)  # n: the start row (no action)
    got, (want, ref) = lstm(cond, prev), nn_lstm_logits(lstm, cond, prev)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    w = torch.randn(got.shape, generator=gen)
    shared = [cond] + [p for m in (lstm.input_proj, lstm.init_h, lstm.init_c, lstm.head) for p in m.parameters()]
    # the cell's (weight_ih, weight_hh, bias_ih, bias_hh) against nn.LSTM's copies, same order
    g_got = torch.autograd.grad((got * w).sum(), shared + list(lstm.cell.parameters()))
    g_ref = torch.autograd.grad((want * w).sum(), shared + list(ref.parameters()))
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def gather_rows(table, tokens):
    """take_rows' reference: gather along the rows with the token index expanded over G."""
    return table.gather(1, tokens.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


@pytest.mark.parametrize("threads", [1, 2])
def test_take_rows_is_gather_bitwise_in_values_and_gradients(threads):
    """take_rows (index_select of whole rows) gives gather's values and, through its index_add_
    backward, gather's scatter_add_ gradients bit for bit: each table row adds its tokens'
    gradients in the same order. Tables made as gate_table makes them (a broadcast sum), many
    tokens per row (the accumulation order matters), shapes from one token to the demo's."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for trial in range(12):
            gen = torch.Generator().manual_seed(100 + trial)
            B, R, T, G = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in
                          ((1, 300), (2, 20), (1, 60), (1, 300)))
            if trial == 0:
                B, R, T, G = 256, 5, 13, 256  # the demo's update
            const = torch.randn(B, 1, G, generator=gen).requires_grad_()
            rows = (torch.randn(1, R, G, generator=gen) * 10).requires_grad_()
            tokens = torch.randint(0, R, (B, T), generator=gen)
            up = torch.randn(B, T, G, generator=gen)
            results = []
            for take in (gather_rows, take_rows):
                out = take(const + rows, tokens)
                results.append((out.detach(), *torch.autograd.grad((out * up).sum(), (const, rows))))
            for want, got in zip(*results, strict=True):
                assert want.shape == got.shape and torch.equal(want, got), (trial, (B, R, T, G))
    finally:
        torch.set_num_threads(old_threads)


def test_model_loss_and_gradients_are_the_gather_forwards_bitwise(monkeypatch):
    """The whole loss and every parameter's gradient are what TokenLSTM.forward gave with gather."""
    m = tiny_model(num_actions=4).train()
    gen = torch.Generator().manual_seed(5)
    obs, goal = random_images(32, 2, (24, 24), seed=6), random_images(32, 1, (24, 24), seed=7)
    targets = torch.randint(0, 6, (32, 9), generator=gen)

    def run():
        m.zero_grad(set_to_none=True)
        losses = m.loss(obs, goal, targets)
        losses["loss"].backward()
        return [v.detach() for v in losses.values()] + [p.grad for p in m.parameters()]

    now = run()
    import glamor.model

    monkeypatch.setattr(glamor.model, "take_rows", gather_rows)
    before = run()
    assert len(now) == len(before) and all(torch.equal(a, b) for a, b in zip(now, before, strict=True))


@pytest.mark.parametrize(
    "obs_shape,dtype,match",
    [((2, 2, 24, 24), torch.float32, "obs must be uint8"), ((2, 3, 24, 24), torch.uint8, r"obs must have shape \(P, 2, 24, 24\)")],
)
def test_bad_observations_are_named(obs_shape, dtype, match):
    m = tiny_model()
    obs = torch.zeros(obs_shape, dtype=dtype)
    with pytest.raises(ValueError, match=match):
        m.plan(obs, torch.zeros(2, 1, 24, 24, dtype=torch.uint8), width=2, horizon=2)


def test_goal_of_another_size_is_named():
    m = tiny_model()
    with pytest.raises(ValueError, match=r"goal must have shape \(P, 1, 24, 24\)"):
        m.plan(torch.zeros(2, 2, 24, 24, dtype=torch.uint8), torch.zeros(2, 1, 10, 10, dtype=torch.uint8))


def test_one_observation_given_where_a_batch_is_taken_is_told_how_to_batch_it():
    """Agent.plan (and model.plan) take a batch; given one observation as it comes from an
    environment (obs["observation"], (S, H, W)), they said only "must have shape (P, S, H, W)",
    while Agent.act takes it as it is."""
    import numpy as np

    from glamor.agent import Agent

    agent = Agent(tiny_model(), width=2, horizon=2)
    obs, goal = np.zeros((2, 24, 24), np.uint8), np.zeros((1, 24, 24), np.uint8)
    cases = [((obs, goal[None]), r"obs must have shape \(P, 2, 24, 24\), got \(2, 24, 24\) \(one obs: a batch "
                                 r"of one is obs\[None\]; Agent.act takes one as it is\)$"),
             ((obs[None], goal), r"got \(1, 24, 24\) \(one goal: a batch of one is goal\[None\];"),
             ((obs[None], goal[0]), r"got \(24, 24\) \(one goal: a batch of one is goal\[None\]\[None\];"),
             ((obs[None, :1], goal[None]), r"obs must have shape \(P, 2, 24, 24\), got \(1, 1, 24, 24\)$")]
    for (o, g), match in cases:
        with pytest.raises(ValueError, match=match):
            agent.plan(o, g)
    assert agent.plan(obs[None], goal[None]).actions.shape == (1, 2)  # what the hint says works
    assert isinstance(agent.act(obs, goal)[0], int)


def test_model_sizes_are_checked_and_numpy_ints_taken():
    import numpy as np

    from glamor.model import GlamorModel

    with pytest.raises(ValueError, match=r"model sizes must be ints >= 1, got \{'frame_stack': 0, 'lstm_hidden': 0\}"):
        GlamorModel(4, 0, (22, 22), (4, 8, 8), 32, 32, 0)
    m = GlamorModel(np.int64(4), 1, (22, 22), (4, 8, 8), 32, 32, 16)  # a gymnasium Discrete's n
    assert type(m.num_actions) is int and m.end_token == 4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(image_hw=(22,)), r"image_hw must be \(height, width\), two ints >= 1, got \(22,\)"),
        (dict(image_hw=22), "image_hw must be .*got 22"),
        (dict(image_hw="22"), "image_hw must be .*got '22'"),
        (dict(image_hw=(22.0, 22.0)), "image_hw must be .*got \\(22.0, 22.0\\)"),
        (dict(encoder_channels=(-4,)), "encoder_channels must be the Impala stages' channels, ints >= 1"),
        (dict(encoder_channels="abc"), "encoder_channels must be"),
        (dict(encoder_channels=(4.5, 8)), "encoder_channels must be"),
        (dict(encoder_channels=(0, 8)), "encoder_channels must be"),
        (dict(encoder_channels=()), "encoder_channels must be"),
    ],
)
def test_image_size_and_channels_are_checked(kwargs, match):
    import numpy as np

    from glamor.model import GlamorModel

    with pytest.raises(ValueError, match=match):
        GlamorModel(4, 1, **{"image_hw": (22, 22), "encoder_channels": (4, 8), **kwargs})
    m = GlamorModel(4, 1, [np.int64(22), 22], [np.int32(4), 8], 16, 16, 8)  # lists and numpy ints are fine
    assert m.image_hw == (22, 22) and all(type(v) is int for v in m.image_hw)


def test_contiguous_weights_plan_the_same_as_channels_last_ones():
    """README: the encoders' conv weights are channels-last, so parameters_to_vector fails on
    them, the reshape idiom works, and a contiguous copy of the model plans the same."""
    m = tiny_model()
    conv_weights = [p for p in m.parameters() if p.dim() == 4]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    with pytest.raises(RuntimeError, match="view size"):
        torch.nn.utils.parameters_to_vector(m.parameters())
    flat = torch.cat([p.reshape(-1) for p in m.parameters()])
    obs, goal = random_images(3, 2, (24, 24), seed=1), random_images(3, 1, (24, 24), seed=2)
    before = m.plan(obs, goal, method="beam", width=6, horizon=4)

    m.to(memory_format=torch.contiguous_format)
    assert torch.equal(torch.nn.utils.parameters_to_vector(m.parameters()), flat)
    after = m.plan(obs, goal, method="beam", width=6, horizon=4)
    assert torch.equal(after.actions, before.actions) and torch.equal(after.lengths, before.lengths)
    torch.testing.assert_close(after.scores, before.scores, rtol=1e-5, atol=1e-5)
