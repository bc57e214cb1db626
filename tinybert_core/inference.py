"""Using a trained model: fill in [MASK] tokens, embed sentences (`tinybert fill-mask`,
`tinybert encode`).

Both run the model without recording a graph and take any tokenizer with BertTokenizer's
interface; neither pads, so MobileBERT's trigram embedding never sees [PAD] neighbours.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from autograd.function import no_grad
from tinybert_core.models.hf_io import PreTrainedModel


def fill_mask(model: PreTrainedModel, tokenizer: Any, text: str,
              top_k: int = 5) -> list[list[dict]]:
    """The `top_k` most probable tokens at each [MASK] of `text`, best first.

    Returns one list per mask, each entry {"token", "token_id", "score" (softmax probability),
    "sequence" (the text with that mask filled, others left)}.
    """
    if top_k < 1:
        raise ValueError(f"fill_mask: top_k must be >= 1, got {top_k}")
    ids = np.asarray(tokenizer(text)["input_ids"], np.int64)[None]            # (1, T)
    positions = np.flatnonzero(ids[0] == tokenizer.mask_token_id)
    if positions.size == 0:
        raise ValueError(f"fill_mask: the text has no {tokenizer.mask_token} token: {text!r}")
    with no_grad():
        logits = model(ids, masked_positions=positions[None]).logits.numpy()[0]  # (P, V)
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    k = min(top_k, probs.shape[-1])
    results = []
    for row, pos in zip(probs, positions):
        best = np.argsort(-row, kind="stable")[:k]
        entries = []
        for token_id in best.tolist():
            filled = ids[0].copy()
            filled[pos] = token_id
            entries.append({"token": tokenizer.convert_ids_to_tokens(token_id),
                            "token_id": token_id, "score": float(row[token_id]),
                            "sequence": tokenizer.decode(filled, skip_special_tokens=True)})
        results.append(entries)
    return results


def embed_texts(model: PreTrainedModel, tokenizer: Any, texts: list[str], pooling: str = "cls",
                batch_size: int = 32, max_length: int | None = None,
                on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, hidden_size) float32 embeddings of `texts` from the backbone's last layer.

    pooling "cls" takes the [CLS] hidden state, "mean" averages all tokens. Texts are batched
    by exact token length, so no padding enters (MobileBERT's trigram embedding would otherwise
    see [PAD] neighbours, spec section 9) and each row equals the text encoded alone.
    `on_batch(texts_done, total)` is called after each forward pass (progress).
    """
    if pooling not in ("cls", "mean"):
        raise ValueError(f"embed_texts: pooling must be 'cls' or 'mean', got {pooling!r}")
    if batch_size < 1:
        raise ValueError(f"embed_texts: batch_size must be >= 1, got {batch_size}")
    backbone = model.base_model
    limit = min(max_length or backbone.config.max_position_embeddings,
                backbone.config.max_position_embeddings)
    encoded = [tokenizer(t, truncation=True, max_length=limit)["input_ids"] for t in texts]
    out = np.zeros((len(texts), backbone.config.hidden_size), np.float32)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    done = 0
    with no_grad():
        for length in sorted(by_length):
            rows = by_length[length]
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                ids = np.asarray([encoded[i] for i in chunk], np.int64)          # (b, T)
                hidden = backbone(ids).last_hidden_state.numpy()                 # (b, T, C)
                out[chunk] = hidden[:, 0] if pooling == "cls" else hidden.mean(axis=1)
                done += len(chunk)
                if on_batch is not None:
                    on_batch(done, len(texts))
    return out
