"""Models: MobileBERT, its IB-BERT teacher and BERT, with Hugging Face's names and keys.

- `layers.py`: what both families share: init, input checks, attention, the encoder loop.
- `mobilebert.py`: the MobileBERT / IB-BERT backbone (bottlenecks, stacked FFNs, NoNorm).
- `bert.py`: the BERT backbone and its MLM head.
- `heads.py`: MobileBERT's heads (MLM, NSP) and the task losses.
- `tasks.py`: the task models of both families (ForPreTraining, ForMaskedLM, ...).
- `outputs.py`: the NamedTuples every model returns.
- `hf_io.py`: `from_pretrained` / `save_pretrained` in the Hugging Face layout.
- `auto.py`: the class for a (model_type, task) pair, and `load_model`.
- `counting.py`: parameters and FLOPs from a config alone.
"""
