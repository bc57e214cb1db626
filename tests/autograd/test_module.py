"""Module / Parameter: naming, traversal, modes, devices, state dicts and their error messages."""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import Tensor, gradcheck, nn


class Block(nn.Module):
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.dense = nn.Linear(4, 3, rng=rng)
        self.LayerNorm = nn.NoNorm(3)
        self.dropout = nn.Dropout(0.5, seed=1)

    def forward(self, x):
        return self.dropout(self.LayerNorm(self.dense(x)))


class Model(nn.Module):
    def __init__(self):
        self.embeddings = nn.Embedding(10, 4, rng=np.random.default_rng(0))
        self.layer = nn.ModuleList([Block(i) for i in range(2)])
        self.tied = self.embeddings.weight          # a tied weight appears once

    def forward(self, ids):
        h = self.embeddings(ids)
        for block in self.layer:
            h = block(F.concat([h, h], axis=-1)[..., :4])
        return h


def test_parameter_names_follow_attribute_order_and_dedupe_ties():
    names = [n for n, _ in Model().named_parameters()]
    assert names == ["embeddings.weight",
                     "layer.0.dense.weight", "layer.0.dense.bias",
                     "layer.0.LayerNorm.weight", "layer.0.LayerNorm.bias",
                     "layer.1.dense.weight", "layer.1.dense.bias",
                     "layer.1.LayerNorm.weight", "layer.1.LayerNorm.bias"]
    assert Model().num_parameters() == 40 + 2 * (12 + 3 + 3 + 3)


def test_linear_weight_is_out_by_in():
    layer = nn.Linear(5, 2)
    assert layer.weight.shape == (2, 5) and layer.bias.shape == (2,)
    assert layer(Tensor(np.ones((3, 7, 5), np.float32))).shape == (3, 7, 2)


def test_train_eval_apply_and_zero_grad():
    m = Model()
    assert all(mod.training for mod in m.modules())
    m.eval()
    assert not any(mod.training for mod in m.modules())
    x = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(m(x).numpy(), m(x).numpy())  # dropout off in eval
    m.train()
    out = m(x).sum()
    out.backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Model" and seen.count("Block") == 2


def test_state_dict_round_trip_and_dtype_cast():
    a, b = Model(), Model()
    for p in b.parameters():
        p.data += 1
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
        assert q.dtype == np.float32


def test_load_state_dict_lists_every_problem_by_name():
    m = Model()
    sd = m.state_dict()
    missing = {k: v for k, v in sd.items() if k != "layer.1.dense.bias"}
    with pytest.raises(ValueError, match=r"missing keys: layer\.1\.dense\.bias"):
        m.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys: pooler\.weight"):
        m.load_state_dict({**sd, "pooler.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"layer\.0\.dense\.weight: checkpoint \(4, 3\) vs model "
                                         r"\(3, 4\)"):
        m.load_state_dict({**sd, "layer.0.dense.weight": np.zeros((4, 3))})
    assert m.load_state_dict(missing, strict=False) == (["layer.1.dense.bias"], [])


def test_module_to_float64_passes_directional_gradcheck():
    m = Model().eval().to(dtype=np.float64)
    ids = np.array([[1, 2, 3, 3]])
    assert gradcheck(lambda: m(ids), params=m.parameters(), mode="directional")


def test_dropout_module_is_seeded_and_scaled():
    d1, d2 = nn.Dropout(0.25, seed=7), nn.Dropout(0.25, seed=7)
    x = Tensor(np.ones((200, 50), np.float32))
    y1, y2 = d1(x).numpy(), d2(x).numpy()
    np.testing.assert_array_equal(y1, y2)
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y1 == 0).mean() - 0.25) < 0.02
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        nn.Dropout(1.0)


def test_module_list_rejects_non_modules():
    with pytest.raises(TypeError, match="ModuleList holds Modules"):
        nn.ModuleList([nn.Linear(2, 2), 3])
