"""Evaluation: metrics computed on held-out data, each next to its baseline.

- `mlm.py`: masked-LM loss and accuracy at the masked positions.
- `metrics.py`, `glue.py`: GLUE metrics in NumPy and the task table (labels, output mode, metric).
- `squad.py`: SQuAD v1.1/v2.0 scoring as the official scripts compute it.
- `squad_postprocess.py`: from span logits over windows to answers, n-best lists and null odds.

Import from the submodules (`from tinybert_core.evaluation.glue import get_task`).
"""
