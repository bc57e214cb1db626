"""Training: one loop for every strategy, and checkpoints a killed run resumes from.

- `loop.py`: `train()`, the stage walk with evaluation, logging and saving.
- `step.py`: `optimizer_step`, the one update: accumulate -> reduce -> clip -> step.
- `checkpoint.py`: model + optimizer + data position + RNG state in one atomic file.
"""
