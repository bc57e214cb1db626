"""What every learning test checks on a run's evaluations (issue 9): shared by the short run in
tests/tinybert_core/training/test_learning.py and the README main job in tests/cli."""
from __future__ import annotations


def assert_learned(records: list[dict], final: dict, min_margin: float, min_ratio: float
                   ) -> None:
    """The checks every learning test makes on a run's evaluations."""
    evals = [r for r in records if "eval_mlm_loss" in r]
    assert len(evals) >= 3
    # The regression of issue 9: accuracy identical to 16 digits at every evaluation, one
    # token predicted everywhere.
    assert len({r["eval_mlm_accuracy"] for r in evals}) > 1, "accuracy never changed"
    assert final["distinct_predictions"] >= 5 and not final["collapsed"]
    margin = final["unigram_loss"] - final["mlm_loss"]
    ratio = final["mlm_accuracy"] / final["unigram_accuracy"]
    assert margin >= min_margin, f"loss {final['mlm_loss']:.3f} vs unigram " \
                                 f"{final['unigram_loss']:.3f}: margin {margin:.3f} nats"
    assert ratio >= min_ratio, f"accuracy {final['mlm_accuracy']:.4f} vs unigram " \
                               f"{final['unigram_accuracy']:.4f}: {ratio:.2f}x"
    assert final["beats_unigram"]
