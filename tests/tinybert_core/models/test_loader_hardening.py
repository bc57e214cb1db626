"""The hang, memory, traversal and silent-acceptance cases of issue 14, one test each: a FIFO,
a file claiming a terabyte, a config asking for a 24 GiB model or a billion layers, a weight map
pointing outside the model directory, Infinity and duplicate keys, fewer layers than weights, a
symlinked tokenizer file, and a training checkpoint whose failed load must change nothing."""
from __future__ import annotations

import json
import os
import signal
import struct
import sys
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest

from autograd import optim
from autograd.files import CheckpointError, open_regular
from autograd.serialization import load_npz, load_safetensors, save_safetensors
from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.training.checkpoint import load_training_checkpoint, save_training_checkpoint

TINY = dict(vocab_size=12, hidden_size=16, embedding_size=8, num_hidden_layers=2,
            num_attention_heads=2, intra_bottleneck_size=8, intermediate_size=8,
            max_position_embeddings=8)
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "whale", "sea", "ship", "a",
          ".", "##s"]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and alarms are POSIX")


@contextmanager
def within(seconds: float):
    """Fail instead of hanging the suite if the body blocks."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def allocates_at_most(limit: int):
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak:,} bytes"


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS))
    config = MobileBertConfig.from_pretrained("mobilebert", **TINY)
    model = MobileBertForPreTraining(config, seed=0)
    model.save_pretrained(tmp_path / "model", tokenizer=BertTokenizer(tmp_path / "vocab.txt"))
    return tmp_path / "model"


def edit_config(directory, **changes):
    path = directory / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@posix_only
@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "vocab.txt",
                                  "tokenizer_config.json"])
def test_a_fifo_is_refused_not_waited_on(model_dir, name):
    (model_dir / name).unlink()
    os.mkfifo(model_dir / name)
    with within(10), pytest.raises(CheckpointError, match=rf"{name} is a FIFO \(named pipe\), "
                                                          rf"not a regular file"):
        if name.startswith(("vocab", "tokenizer")):
            BertTokenizer.from_pretrained(model_dir)
        else:
            MobileBertForPreTraining.from_pretrained(model_dir)


@posix_only
def test_devices_and_directories_are_refused(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(CheckpointError, match="config.json is a directory"):
        MobileBertConfig.from_pretrained(tmp_path)
    if os.path.exists("/dev/zero"):
        with within(10), pytest.raises(CheckpointError, match="is a character device"):
            open_regular("/dev/zero")


def _zip_claiming(count: int) -> bytes:
    """A stored .npz member of a few bytes whose header and zip entry claim `count` floats."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}".encode()
    header += b" " * ((-(len(header) + 11)) % 64) + b"\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(16)
    claimed = len(data) - 16 + 4 * count
    name = b"w.npy"
    extra = struct.pack("<HHQQ", 1, 16, claimed, len(data))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, 0, 0xFFFFFFFF,
                        0xFFFFFFFF, len(name), len(extra)) + name + extra
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, 0,
                          0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0)
    central += name + extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    return local + data + central + end


@pytest.mark.parametrize("count", [1 << 38, 3 << 28])        # 1 TiB, 3 GiB
def test_npz_sizes_are_checked_against_the_real_file(tmp_path, count):
    path = tmp_path / "huge.npz"
    path.write_bytes(_zip_claiming(count))
    assert path.stat().st_size < 512
    with allocates_at_most(1 << 20), pytest.raises(CheckpointError, match=r"huge.npz: array "
                                                   r"'w': the zip directory claims \d+ bytes "
                                                   r"for a stored member of \d+ bytes"):
        load_npz(path)


def test_safetensors_claiming_a_terabyte(tmp_path):
    path = tmp_path / "big.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 18, 1 << 20],
                               "data_offsets": [0, 1 << 40]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with allocates_at_most(1 << 20), pytest.raises(CheckpointError, match="big.safetensors"):
        load_safetensors(path)


@pytest.mark.parametrize("changes, message", [
    ({"vocab_size": 100_000_000}, "vocab_size must be between 1 and 4,194,304"),
    ({"hidden_size": 65536}, r"shape mismatch for mobilebert.embeddings.position_embeddings"
                             r".weight: checkpoint \(8, 16\) vs model \(8, 65536\)"),
    ({"intermediate_size": 200_000}, r"shape mismatch for .*intermediate.dense.weight"),
    ({"num_hidden_layers": 100_000}, "num_hidden_layers must be between 1 and 1,000"),
    ({"num_hidden_layers": 10**12}, "num_hidden_layers must be between 1 and 1,000"),
])
def test_shapes_are_checked_against_the_config_before_the_model_is_built(model_dir, changes,
                                                                        message):
    edit_config(model_dir, **changes)
    with within(20), allocates_at_most(8 << 20), pytest.raises(CheckpointError, match=message):
        MobileBertForPreTraining.from_pretrained(model_dir)


def test_fewer_layers_than_the_weights_is_an_error(model_dir):
    path = edit_config(model_dir, num_hidden_layers=1)
    with pytest.raises(CheckpointError, match=r"model.safetensors: cannot load into "
                                              r"MobileBertForPreTraining: the checkpoint holds "
                                              r"backbone weights for layers 1-1 that config.json"
                                              r"'s num_hidden_layers=1 does not have"):
        MobileBertForPreTraining.from_pretrained(model_dir)
    assert path.exists()


@pytest.mark.parametrize("text, message", [
    ('{"initializer_range": Infinity}', "Infinity is not a JSON number"),
    ('{"layer_norm_eps": Infinity}', "Infinity is not a JSON number"),
    ('{"hidden_size": 16, "hidden_size": 32}', "duplicate key 'hidden_size'"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"architectures": 5}', "architectures must be a list of class names"),
])
def test_config_json_is_strict(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        MobileBertConfig.from_pretrained(tmp_path)
    assert "config.json" in str(info.value)
    with pytest.raises(ValueError, match="initializer_range must be a positive finite number"):
        MobileBertConfig(initializer_range=float("inf"))


def _sharded(model_dir):
    state = MobileBertForPreTraining.from_pretrained(model_dir).state_dict()
    (model_dir / "model.safetensors").unlink()
    names = sorted(state)
    save_safetensors(model_dir / "a.safetensors", {k: state[k] for k in names[:10]})
    save_safetensors(model_dir.parent / "outside.safetensors", {k: state[k] for k in names[10:]})
    return names


@pytest.mark.parametrize("target", ["../outside.safetensors", "ABSOLUTE",
                                    "sub/../../outside.safetensors", "", "a.safetensors/.."])
def test_the_weight_map_cannot_leave_the_model_directory(model_dir, target):
    names = _sharded(model_dir)
    (model_dir / "sub").mkdir()
    if target == "ABSOLUTE":
        target = str(model_dir.parent / "outside.safetensors")
    weight_map = {k: "a.safetensors" if i < 10 else target for i, k in enumerate(names)}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps({"weight_map":
                                                                        weight_map}))
    with pytest.raises(CheckpointError, match=r"model.safetensors.index.json: tensor .* maps to "
                                              r".*, which is not a file name inside the model "
                                              r"directory"):
        MobileBertForPreTraining.from_pretrained(model_dir)


def test_save_pretrained_does_not_copy_through_symlinks(model_dir, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    model = MobileBertForPreTraining.from_pretrained(model_dir)
    (model_dir / "tokenizer_config.json").unlink()
    (model_dir / "tokenizer_config.json").symlink_to(secret)
    with pytest.raises(ValueError, match="tokenizer_config.json is a symbolic link"):
        model.save_pretrained(tmp_path / "copy")
    assert not (tmp_path / "copy" / "tokenizer_config.json").exists()


def _checkpoint(tmp_path):
    config = MobileBertConfig.from_pretrained("mobilebert", **TINY,
                                              attention_probs_dropout_prob=0.1)
    model = MobileBertForPreTraining(config, seed=0).train()
    opt = optim.LAMB(model, lr=1e-3)
    out = model(np.array([[2, 5, 6, 4, 3]]), masked_positions=np.array([[3]]))
    out.prediction_logits.sum().backward()
    opt.step()
    path = save_training_checkpoint(tmp_path / "ckpt.npz", model, opt, 1, config.to_dict())
    return config, path


def _rewrite_meta(path, change):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("step"), "'step' must be a non-negative integer, got None"),
    (lambda m: m.update(step="abc"), "'step' must be a non-negative integer, got 'abc'"),
    (lambda m: m.update(config=5), "'config' must be an object, got int"),
    (lambda m: m.update(config=[]), "'config' must be an object, got list"),
    (lambda m: next(iter(m["generators"].values()))["numpy"].update(state=[1, 2]),
     "invalid dropout generator state"),
])
def test_a_failed_checkpoint_load_changes_nothing(tmp_path, change, message):
    config, path = _checkpoint(tmp_path)
    _rewrite_meta(path, change)
    model = MobileBertForPreTraining(config, seed=5)
    opt = optim.LAMB(model, lr=1e-3)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    generators = {n: m._generators for n, m in model.named_modules() if hasattr(m, "_generators")}
    with pytest.raises(CheckpointError, match=message) as info:
        load_training_checkpoint(path, model, opt, config.to_dict())
    assert "ckpt.npz" in str(info.value)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert opt.step_count == 0 and all(not s for s in opt.state.values())
    assert generators == {n: m._generators for n, m in model.named_modules()
                          if hasattr(m, "_generators")}
