"""Models: MobileBERT, its IB-BERT teacher and BERT, with Hugging Face's names and keys.

- `mobilebert.py`: the MobileBERT / IB-BERT backbone (bottlenecks, stacked FFNs, NoNorm).
- `bert.py`: the BERT backbone.
- `heads.py`: task heads and task models.
- `outputs.py`: the NamedTuples every model returns.
- `hf_io.py`: `from_pretrained` / `save_pretrained` in the Hugging Face layout.
- `counting.py`: parameters and FLOPs from a config alone.
"""
