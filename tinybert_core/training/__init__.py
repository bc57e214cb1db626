"""Training: one loop for every strategy, and checkpoints a killed run resumes from.

- `loop.py`: `train()`, the stage walk with evaluation, logging and saving.
- `checkpoint.py`: model + optimizer + data position + RNG state in one atomic file.
"""
