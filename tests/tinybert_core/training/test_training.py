"""The training loop: exact resume, early NaN failure, strategy stages, freezing, bad teachers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from paths import SHARED_DATA

from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.data.pretraining import make_pretraining_batches
from tinybert_core.distillation.strategies import (KTOptions, build_stages, check_compatible,
                                      copy_from_teacher)
from tinybert_core.training.loop import TrainingArguments, TrainingDiverged, train

VOCAB = SHARED_DATA / "vocab/bert-base-uncased-vocab.txt"
CORPUS = SHARED_DATA / "corpus/sotu-valid.txt"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="needs ../shared/data")

SMALL = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
             max_position_embeddings=32)


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer(VOCAB)


def configs(tok):
    v = {"vocab_size": len(tok)}
    teacher = MobileBertConfig.from_pretrained("ib-bert-small", **SMALL, **v,
                                               intra_bottleneck_size=64, intermediate_size=64)
    student = MobileBertConfig.from_pretrained("mobilebert-small", **SMALL, **v,
                                               intra_bottleneck_size=16, intermediate_size=32)
    return teacher, student


def batches(tok, cache, seed=0):
    return make_pretraining_batches([CORPUS], tokenizer=tok, batch_size=2, max_seq_length=32,
                                    max_predictions_per_seq=5, cache_dir=cache, seed=seed)


def test_killed_run_resumes_to_the_same_weights(tok, tmp_path):
    t_cfg, s_cfg = configs(tok)
    teacher = MobileBertForPreTraining(t_cfg, seed=0)
    args = dict(strategy="progressive", kt_steps_per_layer=2, pd_steps=3, save_every=100)

    def fresh():
        s = MobileBertForPreTraining(s_cfg, seed=1)
        copy_from_teacher(s, teacher)
        return s

    ref = fresh()
    train(ref, TrainingArguments(tmp_path / "ref", **args), batches(tok, tmp_path), teacher)
    a = fresh()
    out = train(a, TrainingArguments(tmp_path / "run", **args), batches(tok, tmp_path), teacher,
                stop_after=3)                     # "killed" in the middle of layer 2's stage
    assert out["steps"] == 3 and "model_dir" not in out
    # A real kill can come after the log got steps the checkpoint lost, mid-line even.
    with open(tmp_path / "run" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n" + '{"step": 5, "lo')
    b = MobileBertForPreTraining(s_cfg, seed=7)   # a new process: different init, new iterator
    out = train(b, TrainingArguments(tmp_path / "run", **args), batches(tok, tmp_path), teacher,
                resume=True)
    assert out["steps"] == 7 and Path(out["model_dir"], "model.safetensors").exists()
    for (name, p), (_, q) in zip(ref.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 8))
    with pytest.raises(ValueError, match=r"is not empty \(it holds checkpoint.npz, "
                                         r"metrics.jsonl, model\)"):
        train(b, TrainingArguments(tmp_path / "run", **args), batches(tok, tmp_path), teacher)


def test_progressive_stage_trains_only_its_block(tok, tmp_path):
    t_cfg, s_cfg = configs(tok)
    teacher = MobileBertForPreTraining(t_cfg, seed=0)
    student = MobileBertForPreTraining(s_cfg, seed=1)
    copied = copy_from_teacher(student, teacher)
    assert "mobilebert.embeddings.word_embeddings.weight" in copied
    assert not any("LayerNorm" in n and n.startswith("mobilebert.") for n in copied)
    before = {n: p.numpy().copy() for n, p in student.named_parameters()}
    train(student, TrainingArguments(tmp_path / "run", strategy="progressive",
                                     kt_steps_per_layer=2, pd_steps=0),
          batches(tok, tmp_path), teacher)
    after = dict(student.named_parameters())
    for name, old in before.items():
        changed = not np.array_equal(old, after[name].numpy())
        # The query/key path has ~1e-11 gradients at init (near-uniform attention), too small to
        # move a float32 weight; the main weights of every block must have moved.
        if name.endswith(("output.bottleneck.dense.weight", "attention.self.value.weight",
                          "intermediate.dense.weight")):
            assert changed, f"{name} was not trained"
        elif ".encoder.layer." not in name:
            assert not changed, f"{name} should be frozen during layer-wise transfer"


def test_stage_plans_have_equal_total_steps():
    for strategy in ("none", "auxiliary", "joint", "progressive"):
        stages = build_stages(strategy, 4, kt_steps_per_layer=5, pd_steps=10, opts=KTOptions())
        assert sum(s.steps for s in stages) == 30, strategy
    names = [s.name for s in build_stages("progressive", 2, 1, 1, KTOptions())]
    assert names == ["progressive-layer-1", "progressive-layer-2", "pd"]
    with pytest.raises(ValueError, match="unknown strategy 'sideways'"):
        build_stages("sideways", 2, 1, 1, KTOptions())


def test_mismatched_teacher_is_refused_before_training(tok, tmp_path):
    t_cfg, s_cfg = configs(tok)
    with pytest.raises(ValueError, match=r"hidden_size: student 32 vs teacher 48"):
        check_compatible(s_cfg, t_cfg.replace(hidden_size=48), "progressive")
    with pytest.raises(ValueError, match=r"num_attention_heads: student 2 vs teacher 4"):
        check_compatible(s_cfg, t_cfg.replace(num_attention_heads=4), "joint")
    check_compatible(s_cfg, t_cfg.replace(hidden_size=48), "none")
    student = MobileBertForPreTraining(s_cfg, seed=1)
    with pytest.raises(ValueError, match="needs a teacher"):
        train(student, TrainingArguments(tmp_path, strategy="joint", kt_steps_per_layer=1),
              batches(tok, tmp_path))


def test_nan_stops_training_naming_step_and_tensor(tok, tmp_path):
    _, s_cfg = configs(tok)
    student = MobileBertForPreTraining(s_cfg, seed=1)
    p = dict(student.named_parameters())["mobilebert.encoder.layer.1.output.dense.weight"]
    p.data[0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 1 \(stage pretrain\): "
                                               r"non-finite loss terms: loss, mlm, nsp; first "
                                               r"non-finite output of the student: mobilebert"
                                               r".encoder.layer.1 \(parameter mobilebert.encoder"
                                               r".layer.1.output.dense.weight holds NaN or inf\); "
                                               r"no checkpoint was written"):
        train(student, TrainingArguments(tmp_path / "run", pd_steps=2), batches(tok, tmp_path))


def _metrics_steps(run_dir):
    return [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_non_finite_weights_are_never_saved(tok, tmp_path):
    from autograd.serialization import load_npz
    _, s_cfg = configs(tok)
    run = tmp_path / "run"
    args = dict(pd_steps=6, save_every=1)
    out = train(MobileBertForPreTraining(s_cfg, seed=1), TrainingArguments(run, **args),
                batches(tok, tmp_path), stop_after=2)
    assert out["steps"] == 2
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 3 \(stage pretrain\): "
                                               r"the update made mobilebert\..* non-finite .*; "
                                               r"the last good checkpoint is .*checkpoint.npz "
                                               r"\(step 2\)"):
        train(MobileBertForPreTraining(s_cfg, seed=1),
              TrainingArguments(run, learning_rate=1e39, **args), batches(tok, tmp_path),
              resume=True)
    saved = load_npz(run / "checkpoint.npz")
    assert all(np.isfinite(v).all() for k, v in saved.items() if k.startswith("model/"))
    assert json.loads(saved["meta"].tobytes())["step"] == 2
    assert _metrics_steps(run) == [1, 2]


def test_a_finished_run_can_be_extended(tok, tmp_path):
    _, s_cfg = configs(tok)
    run = tmp_path / "run"
    out = train(MobileBertForPreTraining(s_cfg, seed=1), TrainingArguments(run, pd_steps=3),
                batches(tok, tmp_path))
    assert out["steps"] == 3 and "model_dir" in out
    out = train(MobileBertForPreTraining(s_cfg, seed=1), TrainingArguments(run, pd_steps=5),
                batches(tok, tmp_path), resume=True)
    assert out["steps"] == out["total_steps"] == 5 and "model_dir" in out
    assert _metrics_steps(run) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("change, field, message", [
    (dict(pd_steps=2), "pd_steps", r"is at step 3, past the 2 steps this run asks for"),
    (dict(strategy="joint", kt_steps_per_layer=1), "strategy",
     r"strategy differs: the checkpoint's run used 'none', this one 'joint'"),
    (dict(seed=5), "seed", r"seed differs: the saved data stream used 0, this one 5"),
])
def test_a_refused_resume_names_the_option(tok, tmp_path, change, field, message):
    from tinybert_core.training.checkpoint import ResumeMismatch
    t_cfg, s_cfg = configs(tok)
    run = tmp_path / "run"
    train(MobileBertForPreTraining(s_cfg, seed=1), TrainingArguments(run, pd_steps=3),
          batches(tok, tmp_path))
    teacher = MobileBertForPreTraining(t_cfg, seed=0) if "strategy" in change else None
    data = batches(tok, tmp_path, seed=change.get("seed", 0))
    args = {k: v for k, v in change.items() if k != "seed"}
    with pytest.raises(ResumeMismatch, match=message) as info:
        train(MobileBertForPreTraining(s_cfg, seed=1),
              TrainingArguments(run, **{"pd_steps": 3, **args}), data, teacher, resume=True)
    assert info.value.field == field
    assert _metrics_steps(run) == [1, 2, 3]            # nothing touched


def test_ctrl_c_names_the_last_good_checkpoint(tok, tmp_path, monkeypatch):
    from tinybert_core.training import loop
    _, s_cfg = configs(tok)
    real_step = loop.train_step

    def interrupt_at_step_4(student, teacher, run, *rest):
        if run.step == 3:
            raise KeyboardInterrupt
        return real_step(student, teacher, run, *rest)

    monkeypatch.setattr(loop, "train_step", interrupt_at_step_4)
    with pytest.raises(loop.TrainingInterrupted, match=r"interrupted after step 3 of 6; the last "
                                                       r"good checkpoint is .*checkpoint.npz "
                                                       r"\(step 2\)") as info:
        train(MobileBertForPreTraining(s_cfg, seed=1),
              TrainingArguments(tmp_path / "run", pd_steps=6, save_every=2),
              batches(tok, tmp_path))
    assert info.value.checkpoint_step == 2


@pytest.mark.parametrize("field", ["eval_every", "save_every", "gradient_accumulation_steps"])
def test_training_arguments_refuse_zero_intervals(tmp_path, field):
    with pytest.raises(ValueError, match=rf"{field} must be at least 1, got 0"):
        TrainingArguments(tmp_path, **{field: 0})
