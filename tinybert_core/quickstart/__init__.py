"""`tinybert quickstart`: the whole MobileBERT path in one resumable run.

vocabulary -> IB-BERT teacher (pre-training) -> knowledge transfer into a MobileBERT student ->
fine-tuning on a task -> int8 quantization -> evaluation of float and int8 -> report.md.
`pipeline.py` holds the settings and the resumable state, `stages.py` the stages (each one a
library recipe, checkpointed, skipped once done), `run.py` runs them in order, `measure.py`
takes the evaluation's measurements and `report.py` writes the report from the files the
stages left behind.
"""
from tinybert_core.quickstart.pipeline import STAGES, QuickstartSettings
from tinybert_core.quickstart.run import run_quickstart

__all__ = ["STAGES", "QuickstartSettings", "run_quickstart"]
