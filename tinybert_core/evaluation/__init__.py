"""Evaluation: GLUE metrics (`metrics`, `glue`), SQuAD v1.1/v2.0 scoring (`squad`) and SQuAD
post-processing from span logits to answers (`squad_postprocess`).

Import from the submodules (`from tinybert_core.evaluation.glue import get_task`); this file
stays small so that it merges with the other evaluation modules (MLM) without conflict.
"""
