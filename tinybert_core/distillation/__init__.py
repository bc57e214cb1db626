"""Distillation: the paper's knowledge-transfer losses and training strategies (section 4).

- `losses.py`: feature-map transfer (MSE), attention transfer (KL per head), pre-training
  distillation (MLM + KD + NSP), and the layer-wise sum the strategies train on.
- `strategies.py`: none / auxiliary / joint / progressive knowledge transfer as lists of stages.
"""
