"""Evaluation: metrics computed on held-out data, each next to its baseline.

- `mlm.py`: masked-LM loss and accuracy at the masked positions.
"""
