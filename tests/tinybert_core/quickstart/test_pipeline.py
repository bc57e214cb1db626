"""The quickstart's settings checks, its state file and its stage directories (fast; the whole
run is tests/test_quickstart_slow.py)."""
from __future__ import annotations

import json

import pytest

from tinybert_core.quickstart.pipeline import (BUILT_IN, STATE_NAME, QuickstartSettings, Run,
                                               fresh_or_resume, resolve_model_config)


def test_settings_checks():
    QuickstartSettings().check()
    with pytest.raises(ValueError, match="--corpus needs --eval-corpus"):
        QuickstartSettings(corpus=["a.txt"]).check()
    with pytest.raises(ValueError, match="--train-file and --dev-file go together"):
        QuickstartSettings(train_file="t.tsv").check()
    with pytest.raises(ValueError, match="--task rte needs --train-file"):
        QuickstartSettings(task="rte").check()


def test_state_is_kept_and_other_settings_refused(tmp_path):
    run = Run(tmp_path, QuickstartSettings(teacher_steps=5))
    assert run.load_or_start() is False
    run.record("vocab", 1.234, False, tokens=10)
    again = Run(tmp_path, QuickstartSettings(teacher_steps=5))
    assert again.load_or_start() is True
    assert again.done("vocab") and not again.done("teacher")
    assert again.info("vocab")["seconds"] == 1.23
    other = Run(tmp_path, QuickstartSettings(teacher_steps=6))
    with pytest.raises(ValueError, match="teacher_steps: 5 there, 6 now.*--overwrite-output-dir"):
        other.load_or_start()
    (tmp_path / STATE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        Run(tmp_path, QuickstartSettings()).load_or_start()


def test_stage_directories(tmp_path):
    d = tmp_path / "teacher"
    assert fresh_or_resume(d, resumable=True) is False and not d.exists()
    d.mkdir()
    (d / "metrics.jsonl").write_text("")
    assert fresh_or_resume(d, resumable=True) is False and not d.exists()   # no checkpoint
    d.mkdir()
    (d / "checkpoint.npz").write_bytes(b"x")
    assert fresh_or_resume(d, resumable=True) is True and d.exists()
    assert fresh_or_resume(d, resumable=False) is False and not d.exists()


def test_built_in_configs_pair_up(tmp_path):
    from tinybert_core.config import MobileBertConfig
    from tinybert_core.distillation.strategies import check_compatible
    run = Run(tmp_path, QuickstartSettings())
    teacher = MobileBertConfig.from_pretrained(resolve_model_config(run, "quickstart-teacher",
                                                                    "teacher"))
    student = MobileBertConfig.from_pretrained(resolve_model_config(run, "quickstart-student",
                                                                    "student"))
    check_compatible(student, teacher, "progressive")
    assert json.loads((tmp_path / "configs" / "student" / "config.json").read_text())[
        "num_feedforward_networks"] == 4
    assert resolve_model_config(run, "mobilebert-small", "student") == "mobilebert-small"
    assert set(BUILT_IN) == {"quickstart-teacher", "quickstart-student"}
