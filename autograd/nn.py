"""Layers: Linear, Embedding, LayerNorm, NoNorm, Dropout (and ModuleList, Module, Parameter).

Attribute names follow PyTorch / Hugging Face (`weight`, `bias`; Linear.weight is
(out_features, in_features)), so model state dicts load without a mapping table. Initialisation
follows BERT: normal(0, initializer_range) weights, zero biases, gamma=1 / beta=0 norms; models
re-initialise with their config's range (truncated normal, as Google's code) through `apply`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import autograd.functional as F
from autograd.module import Module, ModuleList, Parameter
from autograd.tensor import Tensor

__all__ = ["Module", "ModuleList", "Parameter", "Linear", "Embedding", "LayerNorm", "NoNorm",
           "Dropout", "init_normal"]


def init_normal(shape: tuple, std: float, rng: np.random.Generator, dtype: Any = np.float32,
                truncated: bool = True) -> np.ndarray:
    """normal(0, std) samples, redrawn beyond 2 std when truncated (TF's truncated_normal)."""
    out = rng.standard_normal(shape)
    if truncated:
        bad = np.abs(out) > 2.0
        while bad.any():
            out[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(out) > 2.0
    return (out * std).astype(dtype)


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 std: float = 0.02, rng: Any = None, dtype: Any = np.float32,
                 device: Any = None) -> None:
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init_normal((out_features, in_features), std, _rng(rng), dtype),
                                device=device)
        self.bias = Parameter(np.zeros(out_features, dtype), device=device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table looked up by integer ids.

    `padding_idx` (torch's and HF's): that row starts at zero and the lookup never sends it a
    gradient, so padding tokens do not train it (a tied decoder still does)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, std: float = 0.02,
                 rng: Any = None, dtype: Any = np.float32, device: Any = None,
                 padding_idx: int | None = None) -> None:
        if padding_idx is not None and not 0 <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} is outside "
                             f"[0, {num_embeddings})")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        table = init_normal((num_embeddings, embedding_dim), std, _rng(rng), dtype)
        if padding_idx is not None:
            table[padding_idx] = 0
        self.weight = Parameter(table, device=device)

    def forward(self, ids: Any, name: str = "ids") -> Tensor:
        """The rows of `ids`; `name` is what an out-of-range error calls them."""
        return F.embedding(ids, self.weight, name, self.padding_idx)

    def __repr__(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad})"


class LayerNorm(Module):
    """Layer normalisation over the last axis with learned gamma (`weight`) and beta (`bias`)."""

    def __init__(self, size: int, eps: float = 1e-12, dtype: Any = np.float32,
                 device: Any = None) -> None:
        self.eps = eps
        self.weight = Parameter(np.ones(size, dtype), device=device)
        self.bias = Parameter(np.zeros(size, dtype), device=device)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        # `residual` keeps the call interchangeable with NoNorm, which fuses the add.
        return F.layer_norm(x if residual is None else x + residual, self.weight, self.bias,
                            self.eps)


class NoNorm(Module):
    """MobileBERT's NoNorm: x * weight + bias (no statistics), with an optional fused residual."""

    def __init__(self, size: int, eps: float | None = None, dtype: Any = np.float32,
                 device: Any = None) -> None:
        del eps  # accepted so NoNorm and LayerNorm are interchangeable by config
        self.weight = Parameter(np.ones(size, dtype), device=device)
        self.bias = Parameter(np.zeros(size, dtype), device=device)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return F.no_norm(x, self.weight, self.bias, residual)


class Dropout(Module):
    """Inverted dropout with its own seeded generator, active only in training mode."""

    def __init__(self, p: float = 0.1, seed: int | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed = p, seed
        self._generators: dict[str, Any] = {}

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        rng = self._generators.get(x.device)
        if rng is None:
            rng = self._generators[x.device] = x.backend.rng(self.seed)
        return F.dropout(x, self.p, training=True, generator=rng)

    def reseed(self, seed: int | None) -> None:
        """Restart the masks from `seed` (data-parallel processes each draw their own)."""
        self.seed = seed
        self._generators = {}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
