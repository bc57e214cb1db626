"""Training checkpoints: exact resume (weights, moments, dropout RNG), clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import Tensor, nn, optim
from autograd.serialization import CheckpointError
from tinybert_core.training.checkpoint import (load_training_checkpoint, read_checkpoint_meta,
                                      save_training_checkpoint)

CONFIG = {"hidden_size": 16, "num_hidden_layers": 1}


class Net(nn.Module):
    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.dense = nn.Linear(6, 16, rng=rng)
        self.dropout = nn.Dropout(0.3, seed=11)
        self.out = nn.Linear(16, 3, rng=rng)

    def forward(self, x):
        return self.out(self.dropout(F.relu(self.dense(x))))


X = np.random.default_rng(0).standard_normal((32, 6)).astype(np.float32)
Y = np.arange(32) % 3


def train(model, opt, steps):
    for _ in range(steps):
        loss = F.cross_entropy(model(Tensor(X)), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_resume_continues_bit_for_bit(tmp_path):
    ref = Net(0)
    ref_opt = optim.LAMB(ref, lr=0.01)
    train(ref, ref_opt, 10)

    a = Net(0)
    a_opt = optim.LAMB(a, lr=0.01)
    train(a, a_opt, 4)
    path = save_training_checkpoint(tmp_path / "ckpt.npz", a, a_opt, step=4, config=CONFIG,
                                    data_state={"epoch": 1, "order": np.arange(5)},
                                    extra={"stage": "pd"})
    b = Net(123)
    b_opt = optim.LAMB(b, lr=0.01)
    step, data_state, extra = load_training_checkpoint(path, b, b_opt, CONFIG)
    assert step == 4 and extra == {"stage": "pd"} and data_state["epoch"] == 1
    np.testing.assert_array_equal(data_state["order"], np.arange(5))
    train(b, b_opt, 6)
    for (name, p), (_, q) in zip(ref.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_checkpoint_from_another_config_is_refused_before_loading(tmp_path):
    a = Net(0)
    path = save_training_checkpoint(tmp_path / "c.npz", a, None, 0, CONFIG)
    b = Net(1)
    before = b.dense.weight.numpy().copy()
    with pytest.raises(CheckpointError, match=r"different model config: hidden_size: 16 vs 32"):
        load_training_checkpoint(path, b, None, {**CONFIG, "hidden_size": 32})
    np.testing.assert_array_equal(b.dense.weight.numpy(), before)


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    path = save_training_checkpoint(tmp_path / "c.npz", Net(0), None, 0, CONFIG)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.npz"):
        read_checkpoint_meta(tmp_path / "cut.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinybert training checkpoint"):
        read_checkpoint_meta(tmp_path / "plain.npz")


def test_save_is_atomic_and_keeps_the_old_checkpoint_on_failure(tmp_path, monkeypatch):
    path = save_training_checkpoint(tmp_path / "c.npz", Net(0), None, 1, CONFIG)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    def broken_state_dict():
        raise Boom()
    net = Net(0)
    opt = optim.SGD(net, lr=0.1)
    monkeypatch.setattr(opt, "state_dict", broken_state_dict)
    with pytest.raises(Boom):
        save_training_checkpoint(path, net, opt, 2, CONFIG)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
