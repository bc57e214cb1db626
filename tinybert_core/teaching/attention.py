"""What attention transfer and feature-map transfer compare, for one sentence.

`attention_maps` runs a model on a text and returns its attention probabilities per layer and
head; `compare_models` puts a teacher and a student side by side on the same tokens: per layer,
the feature-map distance (the paper's L_FMT, `distillation.losses.feature_map_transfer_loss`)
and the attention KL (L_AT, `attention_transfer_loss`), the very losses progressive knowledge
transfer minimises, so the numbers here are the ones training drove down.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autograd.function import no_grad
from tinybert_core.distillation.losses import attention_transfer_loss, feature_map_transfer_loss
from tinybert_core.models.auto import load_model
from tinybert_core.text.tokenization import BertTokenizer


@dataclass
class AttentionView:
    tokens: list[str]
    probs: np.ndarray            # (L, H, T, T): rows are queries, columns keys
    scores: tuple[Any, ...]      # per layer, the scaled pre-softmax scores (Tensors)
    hidden: tuple[Any, ...]      # embeddings output, then each block's output (Tensors)


def load_for_attention(model_dir: Path) -> tuple[Any, BertTokenizer]:
    """A directory's backbone (any head, float or int8) and its tokenizer."""
    model_dir = Path(model_dir)
    if not (model_dir / "vocab.txt").is_file():
        raise ValueError(f"{model_dir}: no vocab.txt; the text is read with the model's own "
                         f"vocabulary")
    backbone = load_model(model_dir, "base")
    backbone.eval()
    return backbone, BertTokenizer.from_pretrained(model_dir)


def attention_view(backbone: Any, tokenizer: BertTokenizer, text: str,
                   max_seq_length: int = 64) -> AttentionView:
    enc = tokenizer(text, truncation=True,
                    max_length=min(max_seq_length, backbone.config.max_position_embeddings))
    ids = np.asarray(enc["input_ids"], np.int64)[None]                     # (1, T)
    with no_grad():
        out = backbone(ids, output_attentions=True, output_hidden_states=True)
    probs = np.stack([p.numpy()[0] for p in out.attentions])               # (L, H, T, T)
    return AttentionView(tokenizer.convert_ids_to_tokens(ids[0].tolist()), probs,
                         tuple(out.attention_scores), tuple(out.hidden_states))


def attention_maps(model_dir: Path, text: str, max_seq_length: int = 64) -> AttentionView:
    backbone, tokenizer = load_for_attention(model_dir)
    return attention_view(backbone, tokenizer, text, max_seq_length)


def compare_models(teacher: AttentionView, student: AttentionView) -> list[dict[str, float]]:
    """Per layer: L_FMT (MSE of block outputs) and L_AT (KL teacher || student), when the
    two models have the same tokens, depth, inter-block width and heads; else ValueError."""
    if teacher.tokens != student.tokens:
        raise ValueError("the two models tokenize the text differently (different "
                         "vocabularies); attention maps cannot be compared position by position")
    if teacher.probs.shape != student.probs.shape or \
            teacher.hidden[-1].shape != student.hidden[-1].shape:
        raise ValueError(f"the models differ in layers/heads/width: attention "
                         f"{teacher.probs.shape} vs {student.probs.shape}, hidden "
                         f"{teacher.hidden[-1].shape} vs {student.hidden[-1].shape}")
    rows = []
    with no_grad():
        for layer in range(teacher.probs.shape[0]):
            fmt = feature_map_transfer_loss(student.hidden[layer + 1], teacher.hidden[layer + 1])
            at = attention_transfer_loss(student.scores[layer], teacher.scores[layer])
            rows.append({"layer": layer, "feature_map_mse": float(fmt.item()),
                         "attention_kl": float(at.item())})
    return rows


__all__ = ["AttentionView", "attention_maps", "attention_view", "compare_models",
           "load_for_attention"]
