"""The embedded task: deterministic, labelled by module family, split like the corpus, and
readable by the fine-tuning readers."""
from __future__ import annotations

from collections import Counter

import pytest

from tinybert_core.data.embedded_task import (FAMILIES, LABELS, LICENCE, build_embedded_task,
                                              family_of)
from tinybert_core.data.glue import read_task_file


def test_family_of_uses_the_top_level_package():
    assert family_of("asyncio.tasks") == "concurrency"
    assert family_of("email.message") == "internet"
    assert family_of("xml.dom.minidom") == "markup"
    assert family_of("unittest.mock") == "testing"
    assert family_of("logging.handlers") == "logging"
    assert family_of("os") is None and family_of("typing") is None
    members = [m for ms in FAMILIES.values() for m in ms]
    assert len(members) == len(set(members))                # no module in two families


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return build_embedded_task(tmp_path_factory.mktemp("cache"))


def test_files_are_deterministic_and_disjoint(task, tmp_path):
    again = build_embedded_task(tmp_path)                   # built afresh elsewhere
    assert again.train.read_bytes() == task.train.read_bytes()
    assert again.dev.read_bytes() == task.dev.read_bytes()
    train = read_task_file(task.train, "custom")
    dev = read_task_file(task.dev, "custom")
    assert not {e.text_a for e in train} & {e.text_a for e in dev}
    assert {e.label for e in train} == set(LABELS) == {e.label for e in dev}
    assert Counter(e.label for e in dev) == Counter(task.counts["dev"])
    assert len(train) > 2000 and len(dev) > 200
    assert all(len(e.text_a.split()) >= 4 for e in train + dev)
    assert "Python Software Foundation License" in LICENCE


def test_majority_class_is_far_from_everything(task):
    dev = task.counts["dev"]
    majority = max(task.counts["train"], key=task.counts["train"].get)
    assert dev[majority] / sum(dev.values()) < 0.4          # room to be well above it
