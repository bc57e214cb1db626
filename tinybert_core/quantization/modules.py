"""Inference-only int8 layers: `QuantizedLinear`, `QuantizedEmbedding` and the MLM prediction
head with an int8 decoder, plus the placeholders a model is built with before an int8
checkpoint fills it.

The arithmetic is the backend's (`be.kernel("quantize_u8")`, `"quantize_u8_static"`,
`"int8_matmul"`; the contract is `backends/int8.py`), so these classes only hold arrays and
call kernels. What each layer computes, y = x W^T + b with x and W replaced by their int8
codes:

    codes, s_x, z_x = quantize(x)                  uint8, per tensor or per row; static mode:
                                                    in the calibrated range [lo, hi]
    y[m, n] = (sum_k (codes[m, k] - z_x) q[n, k]) * (s_x * s_w[n]) + b[n]

with q the int8 weight (symmetric, per output channel, zero point 0, [-127, 127]) and s_w its
float32 scale. The integer sum is exact (int32); the rescale and bias are float32, in the
order the kernels document, so every backend gives the same bits.

No autograd: the layers return tensors that do not require grad, and refuse an input that
does (quantized weights have no gradient; quantization-aware training is another matter).

Not every call runs the int8 GEMM: where it would be slower than float32 (a small GEMM, a CPU
without a fast int8 kernel) `QuantizedLinear` falls back to float32 on its dequantized weight,
without quantizing its input; `dispatch.py` holds the rule and the switch that forces either.

One activation quantization per tensor, not per layer: `InputQuantizer` is shared by every
int8 layer of a model and remembers its last two inputs, so the linears that read one tensor
(MobileBERT's two bottlenecks and the value projection read the block input; query and key
the shared bottleneck; BERT's query, key and value the layer input) quantize it once. Inputs
are recognised by identity (the same Tensor object holding the same array), never by value.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import backends
from autograd import nn
from autograd.function import is_grad_enabled
from autograd.tensor import Tensor
from backends.int8 import PackedInt8Weights, pack_int8_weights
from tinybert_core.quantization.dispatch import use_int8

WEIGHT_MAX = 127        # symmetric int8 weights: [-127, 127], zero point 0 (TFLite's spec)


def weight_scale(w: Any, axis: int = 1, xp: Any = np) -> Any:
    """`quantize_weight`'s float32 scales, amax / 127 per slice (1 for an all-zero one), on any
    array module: quantization-aware training (qat.py) takes them on the training backend."""
    amax = xp.abs(w).max(axis=axis, keepdims=True).astype(np.float64)
    scale = (amax / WEIGHT_MAX).astype(np.float32)
    return xp.where(scale > 0, scale, np.float32(1.0))


def quantize_weight(w: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization with one scale per slice along the axes other than `axis`
    (axis = the input-feature axis; for a Linear's (out, in) weight, one scale per output
    channel). Returns (q int8, scale float32 shaped like w with `axis` of length 1), so that
    w ~ q * scale. An all-zero channel gets scale 1 (every scale in the format is > 0)."""
    w = np.asarray(w)
    if w.dtype.kind != "f" or not np.isfinite(w).all():
        raise ValueError(f"quantize_weight: the weight must be finite floats, got {w.dtype}"
                         f"{' with inf or nan' if w.dtype.kind == 'f' else ''}")
    scale = weight_scale(w, axis)
    q = np.clip(np.rint(w.astype(np.float32) / scale), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scale


def _inference_only(x: Tensor, who: str) -> None:
    if x.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{who} is inference-only: int8 weights have no gradient. Run the "
                           f"model under autograd.no_grad(), or on inputs that do not require "
                           f"grad")


class InputQuantizer:
    """Float activations -> (uint8 codes, scale, zero point) through the backend's kernels;
    shared by all int8 layers of a model (see the module docstring).

    `per_row`: dynamic ranges per row (token) instead of per tensor. A layer with a calibrated
    `input_range` (static mode) uses it instead of measuring x. qmax is left to the backend
    (`qmax=None`): 255, or 127 where its fastest int8 GEMM needs 7-bit activations.
    """

    def __init__(self, per_row: bool = False) -> None:
        self.per_row = per_row
        self._recent: list[tuple[Tensor, Any, Any, tuple]] = []     # (x, x.data, range, codes)

    def __call__(self, x: Tensor, input_range: tuple[float, float] | None = None) -> tuple:
        for seen, data, rng, result in self._recent:
            if seen is x and data is x.data and rng == input_range:
                return result
        be = x.backend
        if input_range is None:
            codes, scale, zp = be.kernel("quantize_u8")(x.data, None, self.per_row)
            if self.per_row:                              # int8_matmul takes (rows,) vectors
                scale, zp = scale.reshape(-1), zp.reshape(-1)
        else:
            codes, scale, zp = be.kernel("quantize_u8_static")(x.data, *input_range, None)
        result = (codes, scale, zp)
        self._recent = [(x, x.data, input_range, result), *self._recent[:1]]
        return result

    def forget(self) -> None:
        """Drop the remembered inputs (they are also replaced as new ones arrive)."""
        self._recent = []


class QuantizedLinear(nn.Module):
    """y = x W^T + b with int8 weights packed once for the backend's GEMM (no autograd).

    `weight` (out_features, in_features) int8 and `weight_scale` (out_features,) float32 are
    the format's arrays; only the packed copy is kept (`int8_weight()` unpacks it).
    `input_range` is the calibrated (lo, hi) of static mode, None for dynamic.
    """

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                 quantizer: InputQuantizer, input_range: tuple[float, float] | None = None
                 ) -> None:
        if weight.dtype != np.int8 or weight.ndim != 2:
            raise ValueError(f"QuantizedLinear: weight must be 2-D int8, got {weight.dtype} "
                             f"{weight.shape}")
        out_features, in_features = weight.shape
        if weight_scale.shape != (out_features,) or weight_scale.dtype != np.float32:
            raise ValueError(f"QuantizedLinear: weight_scale must be float32 of shape "
                             f"({out_features},), got {weight_scale.dtype} {weight_scale.shape}")
        if bias is not None and bias.shape != (out_features,):
            raise ValueError(f"QuantizedLinear: bias must have shape ({out_features},), got "
                             f"{bias.shape}")
        self.in_features, self.out_features = in_features, out_features
        self.weight: PackedInt8Weights = pack_int8_weights(weight)
        self.weight_scale = np.ascontiguousarray(weight_scale)
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        self.input_range = None if input_range is None else tuple(map(float, input_range))
        self.quantizer = quantizer
        self._float: tuple[backends.Backend, Any, Any] | None = None    # (be, q s, bias)

    def forward(self, x: Tensor) -> Tensor:
        _inference_only(x, "QuantizedLinear")
        k = self.in_features
        if x.ndim < 1 or x.shape[-1] != k:
            raise ValueError(f"QuantizedLinear: x has shape {x.shape}, the layer takes {k} input "
                             f"features")
        be = x.backend
        if use_int8(be, x.data.size // k if k else 0, self.out_features, k):
            return self.from_codes(be, *self.quantizer(x, self.input_range))
        return self.float_forward(x)

    def float_forward(self, x: Tensor, with_bias: bool = True) -> Tensor:
        """The float32 fallback (tinybert_core/quantization/dispatch.py): y = x (q s)^T + b, the
        float GEMM `nn.Linear` runs (the same `x2 @ w.T` on the backend's arrays, so the same
        bits as a float Linear holding q s), on the dequantized weight made the first time and
        kept on the layer (4 bytes per weight). The input is not quantized. Like the int8 path,
        it builds no autograd graph: the layer is inference-only."""
        be = x.backend
        if self._float is None or self._float[0] is not be:
            b = None if self.bias is None else be.asarray(self.bias)
            self._float = (be, be.asarray(self.dequantized_weight()), b)
        _, w, b = self._float
        x2 = x.data.reshape(-1, self.in_features)                             # (M, K)
        if x2.dtype != np.float32:                # the int8 path returns float32 too
            x2 = x2.astype(np.float32)
        y = x2 @ w.T                                                          # (M, N)
        if with_bias and b is not None:
            y += b
        # an op's output, made as Function.apply makes them (Tensor() re-checks what is known)
        return Tensor._from_op(y.reshape(*x.shape[:-1], self.out_features), be, None)

    def from_codes(self, be: backends.Backend, codes: Any, scale: Any, zero_point: Any,
                   with_bias: bool = True) -> Tensor:
        """The layer's output for activations already quantized (shared with other layers)."""
        y = be.kernel("int8_matmul")(codes, self.weight, zero_point, scale, self.weight_scale,
                                     self.bias if with_bias else None)
        return Tensor._from_op(y, be, None)

    def int8_weight(self) -> np.ndarray:
        """The (out_features, in_features) int8 weight (unpacked from the GEMM's layout)."""
        return self.weight.unpack()

    def dequantized_weight(self) -> np.ndarray:
        """q * scale in float32: what the layer multiplies by, for reports and tests."""
        return self.int8_weight().astype(np.float32) * self.weight_scale[:, None]

    def __repr__(self) -> str:
        kind = "dynamic" if self.input_range is None else f"static {self.input_range}"
        return (f"QuantizedLinear({self.in_features}, {self.out_features}, "
                f"bias={self.bias is not None}, {kind})")


class QuantizedEmbedding(nn.Module):
    """A (num_embeddings, embedding_dim) table stored int8 per row (symmetric), looked up and
    dequantized to float32: the embedding's arithmetic stays float, its storage shrinks 4x."""

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray,
                 device: str | None = None) -> None:
        if weight.dtype != np.int8 or weight.ndim != 2 or weight_scale.dtype != np.float32 \
                or weight_scale.shape != (weight.shape[0],):
            raise ValueError(f"QuantizedEmbedding: needs a 2-D int8 table and one float32 scale "
                             f"per row, got {weight.dtype} {weight.shape} and "
                             f"{weight_scale.dtype} {weight_scale.shape}")
        self.num_embeddings, self.embedding_dim = weight.shape
        self.weight = np.ascontiguousarray(weight)
        self.weight_scale = np.ascontiguousarray(weight_scale)
        self.output_device = device or backends.default_backend_name()

    def forward(self, ids: Any, name: str = "ids") -> Tensor:
        """The dequantized rows of `ids` (errors name the ids as nn.Embedding's do)."""
        ids = np.asarray(ids.numpy() if isinstance(ids, Tensor) else ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"embedding: {name} must be integers, got {ids.dtype}")
        n = self.num_embeddings
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"embedding: {name} must lie in [0, {n}), got values in "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        rows = self.weight[ids].astype(np.float32)
        rows *= self.weight_scale[ids][..., None]
        return Tensor(rows, device=self.output_device)

    def __repr__(self) -> str:
        return f"QuantizedEmbedding({self.num_embeddings}, {self.embedding_dim})"


class QuantizedLMPredictionHead(nn.Module):
    """HF's `cls.predictions` with an int8 decoder (MobileBERT's and BERT's MLM head).

    logits = z[:, :E] @ W_emb^T + z[:, E:] @ D + bias, z = transform(hidden_states): the tied
    word-embedding table W_emb (V, E) is the int8 table of the model's QuantizedEmbedding (one
    int8 copy on disk, packed again here for the GEMM), D is MobileBERT's extra output block
    (`dense`, HF's (H - E, V) storage; None for BERT, where E = H). z is quantized once and
    both GEMMs read slices of the same codes.
    """

    def __init__(self, transform: nn.Module, word_embeddings: QuantizedEmbedding,
                 dense: QuantizedLinear | None, bias: nn.Parameter, quantizer: InputQuantizer,
                 input_range: tuple[float, float] | None = None) -> None:
        self.embedding_size = word_embeddings.embedding_dim
        self.transform = transform
        self.bias = bias
        self.decoder = QuantizedLinear(word_embeddings.weight, word_embeddings.weight_scale,
                                       bias.numpy(), quantizer, input_range)
        self.dense = dense
        self.quantizer = quantizer

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decode(self.transform(hidden_states))

    def decode(self, z: Tensor) -> Tensor:
        """The logits for transform outputs z (..., H)."""
        _inference_only(z, "QuantizedLMPredictionHead")
        e, be, width = self.embedding_size, z.backend, z.shape[-1]
        rows = z.data.size // width if width else 0
        if use_int8(be, rows, self.decoder.out_features, width):    # one decision, both GEMMs
            codes, scale, zp = self.quantizer(z, self.decoder.input_range)
            logits = self.decoder.from_codes(be, codes[..., :e], scale, zp)          # (..., V)
            extra = None if self.dense is None else \
                self.dense.from_codes(be, codes[..., e:], scale, zp, with_bias=False)
        else:
            logits = self.decoder.float_forward(z[..., :e])
            extra = None if self.dense is None else \
                self.dense.float_forward(z[..., e:], with_bias=False)
        if extra is not None:
            logits.data += extra.data                             # a fresh array: ours to add to
        return logits


# --- placeholders: a model built to receive an int8 checkpoint -----------------------------------

class PendingLinear(nn.Module):
    """Where a Linear will go: its sizes only, no weights (filled from an int8 checkpoint)."""

    weight = None

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("PendingLinear has no weights yet: load an int8 checkpoint into the "
                           "model (tinybert_core.quantization.checkpoint.fill_int8)")


class PendingEmbedding(nn.Module):
    """Where an Embedding will go: its sizes only, no table."""

    weight = None

    def __init__(self, num_embeddings: int, embedding_dim: int, **_: Any) -> None:
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim

    def forward(self, ids: Any, name: str = "ids") -> Tensor:
        raise RuntimeError("PendingEmbedding has no table yet: load an int8 checkpoint into the "
                           "model (tinybert_core.quantization.checkpoint.fill_int8)")


class PendingLayers:
    """What `models.layers.Initializer` builds instead of Linear and Embedding layers when a
    model is created to receive an int8 checkpoint (pass `seed=PendingLayers()`): no float32
    weights are drawn or allocated; norms, dropout and other small parts are built as usual."""

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> PendingLinear:
        return PendingLinear(in_features, out_features, bias)

    def embedding(self, num: int, dim: int, **kwargs: Any) -> PendingEmbedding:
        return PendingEmbedding(num, dim, **kwargs)


def model_nbytes(model: nn.Module) -> int:
    """Bytes of every array a model holds (parameters, int8 tables and packed weights, scales,
    biases, the float32 copies of layers that fell back), each counted once: what its weights
    take in memory."""
    seen: dict[int, int] = {}

    def count(a: Any) -> None:
        if isinstance(a, np.ndarray):
            base = a if a.base is None else a.base
            seen[id(base)] = max(seen.get(id(base), 0), a.nbytes)
        elif isinstance(a, PackedInt8Weights):
            count(a.data)
            count(a.col_sums)

    for p in model.parameters():
        count(p.numpy())
    for m in model.modules():
        if isinstance(m, (QuantizedLinear, QuantizedEmbedding)):
            for value in vars(m).values():
                count(value)
        if isinstance(m, QuantizedLinear) and m._float is not None:   # a fallback's float copy
            for a in m._float[1:]:
                count(a)
    return sum(seen.values())


def move(model: nn.Module, device: str) -> nn.Module:
    """`model.to(device)` for a model with int8 layers: the parameters move, and the int8
    embeddings (which hold no Parameter) put their rows on `device` from now on."""
    model.to(device)
    for m in model.modules():
        if isinstance(m, QuantizedEmbedding):
            m.output_device = backends.get_backend(device).name
    return model


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted `name` (ModuleList items are numbers) by `module`."""
    parent_name, _, attr = name.rpartition(".")
    parent = root
    for part in parent_name.split(".") if parent_name else []:
        parent = parent[int(part)] if isinstance(parent, nn.ModuleList) else getattr(parent, part)
    if isinstance(parent, nn.ModuleList):
        parent._modules[int(attr)] = module
    else:
        setattr(parent, attr, module)


def get_submodule(root: nn.Module, name: str) -> nn.Module:
    module = root
    for part in name.split(".") if name else []:
        module = module[int(part)] if isinstance(module, nn.ModuleList) else getattr(module, part)
    return module


__all__ = ["WEIGHT_MAX", "weight_scale", "quantize_weight", "InputQuantizer", "QuantizedLinear",
           "QuantizedEmbedding", "QuantizedLMPredictionHead", "PendingLinear",
           "PendingEmbedding", "PendingLayers", "model_nbytes", "move", "set_submodule",
           "get_submodule"]
