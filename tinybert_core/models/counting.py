"""Parameter counts and matmul FLOPs computed from a config alone (no model is built).

`parameter_shapes(config, architecture)` lists every HF state-dict key and shape that the model
class would have (tests check it against instantiated models, key for key), so IB-BERT-LARGE and
BERT-large can be counted without allocating 300M parameters. Spec section 1.2 gives the
expected totals (MobileBERT backbone 24,581,888; TINY 15,485,696; IB-BERT-LARGE 294,205,184
plus a 262,656 pooler; BERT-base 109,482,240; MobileBertForPreTraining 36,597,564).

FLOPs (spec 1.3) are 2 x multiply-accumulates of every matrix product of one forward pass at
sequence length T: each dense layer (tokens x in x out; the pooler and the classifiers on the
pooled vector once per sequence) plus the two attention products per layer, Q K^T and P V
(T x T x true_hidden each). Embedding lookups, norms, activations, softmax and residual adds are
not counted. Heads are counted only when `include_heads=True` (the MLM head at every position:
transform H x H plus H x V scores).
"""
from __future__ import annotations

from collections import OrderedDict

from tinybert_core.config import MobileBertConfig

ARCHITECTURES = ("Model", "ForPreTraining", "ForMaskedLM", "ForNextSentencePrediction",
                 "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")
_NO_POOLER = ("ForMaskedLM", "ForTokenClassification", "ForQuestionAnswering")


def _split_architecture(config: MobileBertConfig, architecture: str | None) -> tuple[str, str]:
    family = "MobileBert" if config.model_type == "mobilebert" else "Bert"
    if architecture is None:
        return family, "Model"
    for kind in ARCHITECTURES:
        if architecture in (family + kind, kind):
            return family, kind
    known = ", ".join(family + k for k in ARCHITECTURES)
    raise ValueError(f"unknown architecture {architecture!r} for model_type "
                     f"{config.model_type!r}; known: {known}")


def _linear(shapes: dict, name: str, out_features: int, in_features: int,
            bias: bool = True) -> None:
    shapes[f"{name}.weight"] = (out_features, in_features)
    if bias:
        shapes[f"{name}.bias"] = (out_features,)


def _norm(shapes: dict, name: str, size: int) -> None:
    shapes[f"{name}.weight"] = (size,)
    shapes[f"{name}.bias"] = (size,)


def _mobilebert_layer(c: MobileBertConfig, shapes: dict, p: str) -> None:
    D, H, inner = c.true_hidden_size, c.hidden_size, c.intermediate_size
    _linear(shapes, p + "attention.self.query", D, c.attention_input_size)
    _linear(shapes, p + "attention.self.key", D, c.attention_input_size)
    _linear(shapes, p + "attention.self.value", D, c.value_input_size)
    _linear(shapes, p + "attention.output.dense", D, D)
    _norm(shapes, p + "attention.output.LayerNorm", D)
    _linear(shapes, p + "intermediate.dense", inner, D)
    _linear(shapes, p + "output.dense", D, inner)
    _norm(shapes, p + "output.LayerNorm", D)
    if c.use_bottleneck:
        _linear(shapes, p + "output.bottleneck.dense", H, D)
        _norm(shapes, p + "output.bottleneck.LayerNorm", H)
        _linear(shapes, p + "bottleneck.input.dense", c.intra_bottleneck_size, H)
        _norm(shapes, p + "bottleneck.input.LayerNorm", c.intra_bottleneck_size)
        if c.key_query_shared_bottleneck:
            _linear(shapes, p + "bottleneck.attention.dense", c.intra_bottleneck_size, H)
            _norm(shapes, p + "bottleneck.attention.LayerNorm", c.intra_bottleneck_size)
    for j in range(c.num_feedforward_networks - 1):
        _linear(shapes, p + f"ffn.{j}.intermediate.dense", inner, D)
        _linear(shapes, p + f"ffn.{j}.output.dense", D, inner)
        _norm(shapes, p + f"ffn.{j}.output.LayerNorm", D)


def _bert_layer(c: MobileBertConfig, shapes: dict, p: str) -> None:
    H, inner = c.hidden_size, c.intermediate_size
    for name in ("query", "key", "value"):
        _linear(shapes, p + f"attention.self.{name}", H, H)
    _linear(shapes, p + "attention.output.dense", H, H)
    _norm(shapes, p + "attention.output.LayerNorm", H)
    _linear(shapes, p + "intermediate.dense", inner, H)
    _linear(shapes, p + "output.dense", H, inner)
    _norm(shapes, p + "output.LayerNorm", H)


def backbone_shapes(config: MobileBertConfig, add_pooling_layer: bool = True,
                    prefix: str = "") -> dict[str, tuple]:
    """Keys and shapes of MobileBertModel / BertModel (prefix e.g. "mobilebert.")."""
    c, s = config, OrderedDict()
    mobile = c.model_type == "mobilebert"
    E, H = c.embedding_size, c.hidden_size
    s[prefix + "embeddings.word_embeddings.weight"] = (c.vocab_size, E)
    s[prefix + "embeddings.position_embeddings.weight"] = (c.max_position_embeddings, H)
    s[prefix + "embeddings.token_type_embeddings.weight"] = (c.type_vocab_size, H)
    if mobile:
        _linear(s, prefix + "embeddings.embedding_transformation", H,
                E * (3 if c.trigram_input else 1))
    _norm(s, prefix + "embeddings.LayerNorm", H)
    for i in range(c.num_hidden_layers):
        (_mobilebert_layer if mobile else _bert_layer)(c, s, f"{prefix}encoder.layer.{i}.")
    if add_pooling_layer and (c.classifier_activation or not mobile):
        _linear(s, prefix + "pooler.dense", H, H)
    return s


def parameter_shapes(config: MobileBertConfig, architecture: str | None = None
                     ) -> dict[str, tuple]:
    """Every state-dict key and shape of `architecture` (e.g. "MobileBertForPreTraining";
    default the backbone), tied parameters listed once, as the model's state_dict does."""
    family, kind = _split_architecture(config, architecture)
    c = config
    if kind == "Model":
        return backbone_shapes(c)
    prefix = "mobilebert." if family == "MobileBert" else "bert."
    s = backbone_shapes(c, kind not in _NO_POOLER, prefix)
    H, V = c.hidden_size, c.vocab_size
    if kind in ("ForPreTraining", "ForMaskedLM"):
        s["cls.predictions.bias"] = (V,)
        _linear(s, "cls.predictions.transform.dense", H, H)
        _norm(s, "cls.predictions.transform.LayerNorm", H)
        if family == "MobileBert":
            s["cls.predictions.dense.weight"] = (H - c.embedding_size, V)
    if kind in ("ForPreTraining", "ForNextSentencePrediction"):
        _linear(s, "cls.seq_relationship", 2, H)
    if kind in ("ForSequenceClassification", "ForTokenClassification"):
        _linear(s, "classifier", c.num_labels, H)
    if kind == "ForQuestionAnswering":
        _linear(s, "qa_outputs", 2, H)
    return s


def _numel(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def count_parameters(config: MobileBertConfig, architecture: str | None = None) -> int:
    """Total number of parameters of `architecture` (tied weights once)."""
    return sum(_numel(s) for s in parameter_shapes(config, architecture).values())


def parameter_breakdown(config: MobileBertConfig, architecture: str | None = None
                        ) -> dict[str, int]:
    """Parameters per top-level module ("mobilebert.embeddings", "mobilebert.encoder", "cls",
    ...), in definition order."""
    _, kind = _split_architecture(config, architecture)
    depth = 1 if kind == "Model" else 2
    out: dict[str, int] = OrderedDict()
    for key, shape in parameter_shapes(config, architecture).items():
        parts = key.split(".")
        top = ".".join(parts[:depth]) if parts[0] in ("mobilebert", "bert") or depth == 1 \
            else parts[0]
        out[top] = out.get(top, 0) + _numel(shape)
    return out


def matmul_flops(config: MobileBertConfig, seq_len: int = 128, batch_size: int = 1,
                 architecture: str | None = None, include_heads: bool = False
                 ) -> dict[str, int]:
    """FLOPs (2 x MACs) of every matmul in one forward pass, by part and in "total"."""
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"matmul_flops: seq_len and batch_size must be >= 1, got {seq_len} "
                         f"and {batch_size}")
    _, kind = _split_architecture(config, architecture)
    c, T = config, seq_len
    shapes = parameter_shapes(config, architecture)
    parts = OrderedDict(embeddings=0, encoder_dense=0, attention_scores=0, pooler=0, heads=0)
    for key, shape in shapes.items():
        if len(shape) != 2 or key.endswith("_embeddings.weight"):
            continue
        out_f, in_f = shape
        if ".pooler." in key:
            parts["pooler"] += in_f * out_f
        elif ".embeddings." in key or key.startswith("embeddings."):
            parts["embeddings"] += T * in_f * out_f
        elif ".encoder." in key or key.startswith("encoder."):
            parts["encoder_dense"] += T * in_f * out_f
        elif include_heads:
            per_sequence = "seq_relationship" in key or (
                key.startswith("classifier") and kind == "ForSequenceClassification")
            parts["heads"] += (1 if per_sequence else T) * in_f * out_f
    parts["attention_scores"] = c.num_hidden_layers * 2 * T * T * c.true_hidden_size
    if include_heads and kind in ("ForPreTraining", "ForMaskedLM"):
        parts["heads"] += T * c.embedding_size * c.vocab_size     # tied decoder (not in shapes)
    flops = OrderedDict((k, 2 * v * batch_size) for k, v in parts.items())
    flops["total"] = sum(flops.values())
    return flops


def summary(config: MobileBertConfig, architecture: str | None = None, seq_len: int = 128,
            batch_size: int = 1) -> dict:
    """What `tinybert summary` prints: parameters per top-level module and FLOPs."""
    family, kind = _split_architecture(config, architecture)
    return {
        "architecture": family + kind,
        "model_type": config.model_type,
        "parameters": dict(parameter_breakdown(config, architecture)),
        "total_parameters": count_parameters(config, architecture),
        "seq_len": seq_len,
        "batch_size": batch_size,
        "flops": dict(matmul_flops(config, seq_len, batch_size, architecture)),
        "flops_counted": "2 x MACs of dense layers (embedding projection, encoder, pooler) and "
                         "of Q K^T and P V; heads, lookups, norms and softmax not counted",
    }
