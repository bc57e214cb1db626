"""`tinybert trace`: the autograd graph of one forward and backward, as text (and DOT).

Three things can be traced:
- one encoder block (`scope="layer"`, the default): the block's input is the embedding output
  of a short text, made a leaf that requires grad, and backward starts from the mean of the
  block's output. A MobileBERT block's ops are grouped under the paper's names (Figure 1 and
  section 3.1 of Sun et al., 2020): input bottleneck, multi-head attention, the stacked FFNs,
  output bottleneck;
- the whole backbone (`scope="model"`), grouped by embeddings / encoder block / pooler;
- one op by its name in the gradient audit (`autograd/audit.py`), on the audit's inputs.

The recording itself is `autograd/trace.py`; this module only builds the inputs and names the
blocks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import autograd.functional as F
from autograd.function import no_grad
from autograd.tensor import Tensor
from autograd.trace import Graph, GraphRecorder, Node, format_graph, to_dot
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.auto import load_model, model_class

SCOPES = ("layer", "model")
DEFAULT_TEXT = "the whale swam into the deep sea ."


@dataclass
class Trace:
    """A recorded graph with the names that make it readable."""

    graph: Graph
    title: str
    group: Callable[[Node], str | None]
    prefix: str = ""

    def text(self) -> str:
        return f"{self.title}\n\n" + format_graph(self.graph, self.group, self.prefix)

    def dot(self) -> str:
        return to_dot(self.graph, self.group)


def mobilebert_block_names(config: MobileBertConfig) -> Callable[[Node], str | None]:
    """Module path inside one block -> the paper's block name (Figure 1)."""
    n_ffn = config.num_feedforward_networks
    wide, narrow = config.hidden_size, config.true_hidden_size
    norm = "NoNorm" if config.normalization_type == "no_norm" else "LayerNorm"

    def group(node: Node) -> str | None:
        m = node.module
        if m.startswith("bottleneck.input"):
            return f"input bottleneck: Linear {wide} -> {narrow} + {norm} (block input of " \
                   f"the attention residual)"
        if m.startswith("bottleneck.attention"):
            return f"input bottleneck, shared for query and key: Linear {wide} -> {narrow} " \
                   f"+ {norm}"
        if m.startswith("attention.self"):
            return f"multi-head attention: {config.num_attention_heads} heads of " \
                   f"{narrow // config.num_attention_heads}, softmax(Q K^T / sqrt(d) + mask) V"
        if m.startswith("attention.output"):
            return f"attention output: Linear {narrow} -> {narrow}, Add & {norm}"
        hit = re.match(r"ffn\.(\d+)", m)
        if hit:
            return f"stacked FFN {int(hit.group(1)) + 1} of {n_ffn}: Linear {narrow} -> " \
                   f"{config.intermediate_size}, {config.hidden_act}, Linear back, Add & {norm}"
        if m.startswith("output.bottleneck"):
            return f"output bottleneck: Linear {narrow} -> {wide}, Add & {norm} with the " \
                   f"block input"
        if m.startswith("intermediate") or m.startswith("output"):
            return f"stacked FFN {n_ffn} of {n_ffn} (the block's own intermediate + output)"
        return "backward starts here: mean of the block output" if m == "" else None
    return group


def _backbone_groups(node: Node) -> str | None:
    parts = node.module.split(".")
    if parts[0] == "encoder" and len(parts) >= 3:
        return f"encoder block {parts[2]}"
    return parts[0] or "backward starts here: mean of the last hidden state"


def _encode(model_dir: Path | None, text: str, config: MobileBertConfig,
            max_seq_length: int, seed: int) -> np.ndarray:
    """(1, T) ids: the text through the model's vocabulary, else seeded random ids."""
    if model_dir is not None and (Path(model_dir) / "vocab.txt").is_file():
        from tinybert_core.text.tokenization import BertTokenizer
        tok = BertTokenizer.from_pretrained(model_dir)
        ids = tok(text, truncation=True, max_length=max_seq_length)["input_ids"]
        return np.asarray(ids, np.int64)[None]
    n = min(max_seq_length, len(text.split()) + 2)
    return np.random.default_rng(seed).integers(5, config.vocab_size, (1, n))


def load_backbone(model_dir: Path | None, config: str | Path | None, seed: int = 0) -> Any:
    """A directory's backbone (float or int8, any task head), or a fresh one of `config`."""
    if model_dir is not None:
        return load_model(model_dir, "base")
    cfg = MobileBertConfig.from_pretrained(config or "mobilebert")
    return model_class(cfg, "base")(cfg, seed=seed)


def trace_model(model_dir: Path | None = None, config: str | Path | None = None,
                text: str = DEFAULT_TEXT, scope: str = "layer", layer: int = 0,
                max_seq_length: int = 16, seed: int = 0) -> Trace:
    """Record one forward and backward of a block (`scope="layer"`) or the backbone."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if model_dir is not None and MobileBertConfig.from_pretrained(model_dir).extra.get(
            "quantization_config"):
        raise ValueError(f"{model_dir} is an int8 model, which runs inference only (int8 "
                         f"weights have no gradient); trace its float original")
    backbone = load_backbone(model_dir, config, seed)
    backbone.eval()                      # no dropout: the graph shows the inference path too
    cfg = backbone.config
    ids = _encode(model_dir, text, cfg, max_seq_length, seed)
    where = str(model_dir) if model_dir is not None else f"--config {config or 'mobilebert'}"
    if scope == "model":
        with GraphRecorder(backbone) as rec:
            out = backbone(ids)
            F.mean(out.last_hidden_state).backward()
        title = f"trace of {where}: backbone forward + backward on {ids.shape[1]} tokens " \
                f"({cfg.num_hidden_layers} blocks)"
        return Trace(rec.graph, title, _backbone_groups)
    blocks = backbone.encoder.layer
    if not 0 <= layer < len(blocks):
        raise ValueError(f"layer {layer} does not exist: the model has {len(blocks)} blocks "
                         f"(0..{len(blocks) - 1})")
    with no_grad():
        hidden = backbone.embeddings(ids)
        for i in range(layer):
            hidden = blocks[i](hidden).hidden_states
    x = Tensor(hidden.data, requires_grad=True)
    block = blocks[layer]
    with GraphRecorder(block, names={"hidden_states": x}) as rec:
        out = block(x)
        F.mean(out.hidden_states).backward()
    kind = "MobileBERT" if cfg.use_bottleneck and cfg.num_feedforward_networks > 1 else \
        "IB-BERT / BERT"
    title = (f"trace of {where}: encoder block {layer} ({kind}: hidden {cfg.hidden_size}, "
             f"inside {cfg.true_hidden_size}, {cfg.num_feedforward_networks} FFN(s)), forward + "
             f"backward on {ids.shape[1]} tokens; module names are relative to "
             f"encoder.layer.{layer}")
    group = mobilebert_block_names(cfg) if cfg.model_type == "mobilebert" else None
    return Trace(rec.graph, title, group or (lambda n: n.module.split(".")[0] or None))


def trace_op(name: str, seed: int = 0) -> Trace:
    """Record one op of the gradient audit on its audit inputs (float64)."""
    from autograd.audit import audit_cases
    cases = {case[0]: case for case in audit_cases(seed)}
    if name not in cases:
        raise ValueError(f"unknown op {name!r}; known: {', '.join(sorted(cases))}")
    _, fn, inputs = cases[name]
    names = {f"x{i}": t for i, t in enumerate(inputs)}
    with GraphRecorder(names=names) as rec:
        out = fn(*inputs)
        (F.sum(out) if out.size > 1 else out).backward()
    shapes = ", ".join(f"x{i} {tuple(t.shape)}" for i, t in enumerate(inputs))
    return Trace(rec.graph, f"trace of op {name} on {shapes} (the gradient audit's case); "
                            f"backward starts from the sum of its output",
                 lambda n: None)


__all__ = ["DEFAULT_TEXT", "SCOPES", "Trace", "load_backbone", "mobilebert_block_names",
           "trace_model", "trace_op"]
