"""Tiny float models of every family (MobileBERT, MobileBERT-TINY, IB-BERT, BERT) and a few
task heads, with input batches, for the int8 tests (a helper module: `conftest` names clash
across test directories)."""
from __future__ import annotations

import numpy as np

from tinybert_core import MobileBertConfig, model_class

VOCAB = 120
TINY = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=32, intra_bottleneck_size=16,
            max_position_embeddings=32, num_feedforward_networks=2)
CONFIGS = {
    "mobilebert": lambda: MobileBertConfig(**TINY),
    "mobilebert-tiny": lambda: MobileBertConfig(**TINY, use_bottleneck_attention=True,
                                                key_query_shared_bottleneck=False),
    "ib-bert": lambda: MobileBertConfig(**{**TINY, "intra_bottleneck_size": 64,
                                           "num_feedforward_networks": 1},
                                        key_query_shared_bottleneck=False,
                                        normalization_type="layer_norm", hidden_act="gelu_new"),
    "bert": lambda: MobileBertConfig.bert(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=4, intermediate_size=64,
                                          max_position_embeddings=32),
}


def make_model(family: str = "mobilebert", task: str = "pretraining", seed: int = 0,
               std: float = 0.2):
    """A float model in eval mode whose weights are larger than the default init (std 0.2
    instead of 0.02), so activations and logits are far from zero and errors are visible."""
    config = CONFIGS[family]().replace(initializer_range=std)
    return model_class(config, task)(config, seed=seed).eval()


def batches(n: int = 2, batch: int = 3, seq: int = 12, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"input_ids": rng.integers(5, VOCAB, (batch, seq))} for _ in range(n)]

