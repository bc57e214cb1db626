"""Where quantization error comes from: every int8 layer's output against the float model's,
on real text, grouped by the paper's blocks.

For each int8 layer (every Linear, the MLM decoder) the report gives:
- `weight_rel_error`: ||W - q s|| / ||W|| of its weights alone;
- `local`: the layer's own error. The int8 layer is run on the float model's input to that
  layer and compared with the float layer's output: relative error ||y_q - y|| / ||y|| and
  cosine similarity, over every element of every sequence;
- `accumulated`: the int8 model's output at that layer against the float model's at the same
  place, so the error of every layer before it is included.
A layer with a large local error is a cause; a large accumulated error after small local
ones is error carried forward (the residual stream of 24 blocks carries it a long way).
Summaries per block (`blocks`: bottlenecks, attention Q/K/V, attention output, FFNs, output
bottleneck, heads; MobileBERT Figure 1 / HF's names) and per depth (`depth`), the worst
layers, and the model's final output (relative error, cosine, argmax agreement) follow.

The errors are those of the int8 arithmetic: every layer runs its int8 GEMM while they are
measured (`int8_dispatch("always")`), whatever it would do at run time. `dispatch_summary` says
what it would do: for a typical call (batch 1 and 8 at the model's sequence length), which
layers run int8 and which fall back to float32 on the Numba backend of this CPU
(tinybert_core/quantization/dispatch.py).

Sequences are run one at a time (the float outputs of every layer for one sequence are held
while the int8 model runs it), so memory stays small even for the 24-layer model.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import backends
from autograd import nn
from autograd.function import no_grad
from autograd.tensor import Tensor
from tinybert_core.quantization.dispatch import int8_dispatch, int8_pays
from tinybert_core.quantization.modules import (
    QuantizedEmbedding,
    QuantizedLinear,
    QuantizedLMPredictionHead,
    get_submodule,
)
from tinybert_core.quantization.ptq import units, watching

BLOCKS = [   # (pattern on the layer name, block); first match wins
    (r"embeddings\.embedding_transformation$", "embedding transformation"),
    (r"embeddings\.word_embeddings$", "word embeddings"),
    (r"bottleneck\.input\.dense$", "bottleneck input"),
    (r"bottleneck\.attention\.dense$", "bottleneck for query/key"),
    (r"attention\.self\.(query|key|value)$", "attention query/key/value"),
    (r"attention\.output\.dense$", "attention output"),
    (r"output\.bottleneck\.dense$", "output bottleneck"),
    (r"intermediate\.dense$", "FFN intermediate"),
    (r"output\.dense$", "FFN output"),
    (r"pooler\.dense$", "pooler"),
    (r"predictions\.transform\.dense$", "MLM head transform"),
    (r"predictions\.decoder$", "MLM decoder"),
]
OUTPUT_FIELDS = ("prediction_logits", "logits", "start_logits", "last_hidden_state")


def block_of(name: str) -> tuple[str, int | None]:
    """(the paper's block, encoder layer index or None) of a layer name."""
    layer = re.search(r"encoder\.layer\.(\d+)\.", name)
    for pattern, block in BLOCKS:
        if re.search(pattern, name):
            return block, int(layer.group(1)) if layer else None
    return "task head", None


class _Error:
    """Relative error and cosine of `got` against `ref`, accumulated over many arrays."""

    def __init__(self) -> None:
        self.err2 = self.ref2 = self.got2 = self.dot = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        self.err2 += float(np.square(got - ref).sum())
        self.ref2 += float(np.square(ref).sum())
        self.got2 += float(np.square(got).sum())
        self.dot += float((ref * got).sum())

    def result(self) -> dict[str, float]:
        rel = (self.err2 / self.ref2) ** 0.5 if self.ref2 else float(self.err2 > 0)
        den = (self.ref2 * self.got2) ** 0.5
        return {"rel_error": rel, "cosine": self.dot / den if den else 1.0}


def _output(out: Any) -> tuple[str, np.ndarray]:
    for field in OUTPUT_FIELDS:
        value = getattr(out, field, None)
        if value is not None:
            return field, value.numpy()
    raise ValueError("quantization_report: the model returned none of " + ", ".join(OUTPUT_FIELDS))


def _weight_error(float_model: nn.Module, int8_model: nn.Module, name: str, kind: str
                  ) -> float | None:
    if kind == "lm_head":
        return None                  # the tied table is reported under word embeddings
    w = get_submodule(float_model, name).weight.numpy().astype(np.float64)
    m = get_submodule(int8_model, name)
    if isinstance(m, QuantizedEmbedding):
        q = m.weight.astype(np.float64) * m.weight_scale[:, None]
    else:
        q = m.dequantized_weight().astype(np.float64)
    return float(np.linalg.norm(q - w) / max(np.linalg.norm(w), 1e-30))


def quantization_report(float_model: nn.Module, int8_model: nn.Module,
                        batches: Iterable[dict[str, Any]], max_sequences: int = 8,
                        keep_float: Iterable[str] = ()) -> dict[str, Any]:
    """The per-layer error report (module docstring) of `int8_model` against `float_model` on
    the first `max_sequences` sequences of `batches` (dicts of model arguments)."""
    layers = units(float_model, keep_float)
    local = {n: _Error() for n, k in layers.items() if k != "embedding"}
    accumulated = {n: _Error() for n in local}
    final, agree, total, field = _Error(), 0, 0, None
    stored: dict[str, np.ndarray] = {}

    def float_side(name: str, kind: str) -> dict[str, tuple]:
        if kind == "lm_head":
            head = name.removesuffix(".decoder")
            z: list[Tensor] = []

            def head_out(x: Tensor, y: Tensor) -> None:
                stored[name] = y.numpy()
                local[name].add(stored[name], get_submodule(int8_model, head).decode(z[0])
                                .numpy())
            return {f"{head}.transform": (None, lambda x, y: z.__setitem__(slice(None), [y])),
                    head: (None, head_out)}
        layer = get_submodule(int8_model, name)

        def linear_out(x: Tensor, y: Tensor) -> None:
            stored[name] = y.numpy()
            local[name].add(stored[name], layer(x).numpy())
        return {name: (None, linear_out)}

    def int8_side(name: str, kind: str) -> dict[str, tuple]:
        target = name.removesuffix(".decoder") if kind == "lm_head" else name
        return {target: (None, lambda x, y: accumulated[name].add(stored[name], y.numpy()))}

    float_watch: dict[str, tuple] = {}
    int8_watch: dict[str, tuple] = {}
    for name in local:
        float_watch.update(float_side(name, layers[name]))
        int8_watch.update(int8_side(name, layers[name]))
    seen = 0
    with no_grad(), int8_dispatch("always"):
        for batch in batches:
            for row in range(len(batch["input_ids"])):
                if seen >= max_sequences:
                    break
                one = {k: v[row:row + 1] for k, v in batch.items()}
                stored.clear()
                with watching(float_model, float_watch):
                    field, ref = _output(float_model(**one))
                with watching(int8_model, int8_watch):
                    _, got = _output(int8_model(**one))
                final.add(ref, got)
                if field != "last_hidden_state":
                    agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
                    total += ref[..., 0].size
                seen += 1
    if not seen:
        raise ValueError("quantization_report: no sequences to measure on")
    rows = []
    for name, kind in layers.items():
        block, depth = block_of(name)
        row = {"name": name, "block": block, "layer": depth, "kind": kind,
               "weight_rel_error": _weight_error(float_model, int8_model, name, kind)}
        if name in local:
            row["local"], row["accumulated"] = local[name].result(), accumulated[name].result()
            rng = getattr(get_submodule(int8_model, name), "input_range", None)
            if rng is not None:
                row["input_range"] = list(rng)
        rows.append(row)
    output = {"field": field, **final.result()}
    if total:
        output["argmax_agreement"] = agree / total
    return {"sequences": seen, "layers": rows, "blocks": _summary(rows, "block"),
            "depth": _summary([r for r in rows if r["layer"] is not None], "layer"),
            "worst": sorted((r for r in rows if "local" in r),
                            key=lambda r: -r["local"]["rel_error"])[:8],
            "output": output}


def dispatch_plan(model: nn.Module, inputs: dict[str, Any], device: str = "numba"
                  ) -> list[dict[str, Any]]:
    """Which int8 layers of `model` would run int8 and which fall back to float32 under
    "auto" on `device`'s backend, for a forward on `inputs`: one row per layer call (name,
    rows M, out_features N, in_features K, "int8" or "float32"). The forward runs on the
    model's own backend, in float32 ("never": the fastest), and leaves no float32 copies."""
    be = backends.get_backend(device)
    heads = {n for n, m in model.named_modules() if isinstance(m, QuantizedLMPredictionHead)}
    shapes: dict[str, tuple] = {}
    watch: dict[str, tuple] = {}
    for name, m in model.named_modules():
        if isinstance(m, QuantizedLinear) and name.rpartition(".")[0] not in heads:
            watch[name] = (lambda x, n=name: shapes.__setitem__(n, x.shape), None)
    for head in heads:             # one decision for both GEMMs, on the transform's output
        watch[f"{head}.transform"] = (None, lambda x, y, n=head: shapes.__setitem__(n, y.shape))
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    kept = [m._float for m in layers]
    try:
        with no_grad(), int8_dispatch("never"), watching(model, watch):
            model(**inputs)
    finally:
        for m, f in zip(layers, kept):
            m._float = f
    plan = []
    for name, shape in shapes.items():
        m = get_submodule(model, name)
        n = m.decoder.out_features if name in heads else m.out_features
        k, rows = shape[-1], int(np.prod(shape[:-1]))
        plan.append({"name": name, "rows": rows, "out_features": n, "in_features": k,
                     "runs": "int8" if int8_pays(be, rows, n, k) else "float32"})
    return plan


def dispatch_summary(model: nn.Module, seq_len: int, sizes: Sequence[int] = (1, 8),
                     device: str = "numba") -> dict[str, Any]:
    """`dispatch_plan` at batch sizes `sizes` x `seq_len` tokens, counted per block."""
    be = backends.get_backend(device)
    out: dict[str, Any] = {"backend": be.name, "int8_path": be.int8_gemm_path(),
                           "threads": be.gemm_threads(), "seq_len": seq_len, "batches": []}
    for batch in sizes:
        plan = dispatch_plan(model, {"input_ids": np.ones((batch, seq_len), np.int64)}, device)
        blocks: dict[str, dict[str, int]] = {}
        for row in plan:
            counts = blocks.setdefault(block_of(row["name"])[0], {"int8": 0, "float32": 0})
            counts[row["runs"]] += 1
        out["batches"].append({"batch": batch, "int8": sum(c["int8"] for c in blocks.values()),
                               "float32": sum(c["float32"] for c in blocks.values()),
                               "blocks": blocks})
    return out


def format_dispatch(summary: dict[str, Any]) -> str:
    """One line per batch size: how many layers run int8, and the blocks that fall back."""
    path = summary["int8_path"]
    lines = [f"int8 dispatch on --backend {summary['backend']} ("
             + (f"int8 path {path}" if path else "no fast int8 path on this CPU: all float32")
             + f", {summary['threads']} thread(s); --int8-dispatch always forces int8), "
             f"{summary['seq_len']} tokens:"]
    for b in summary["batches"]:
        back = [f"{name} {c['float32']}" for name, c in b["blocks"].items() if c["float32"]]
        lines.append(f"  batch {b['batch']}: {b['int8']} of {b['int8'] + b['float32']} layers "
                     f"int8" + (f"; float32: {', '.join(back)}" if back else ""))
    return "\n".join(lines)


def _summary(rows: list[dict], key: str) -> list[dict[str, Any]]:
    """Per-group means and extremes of the layers' errors, in order of first appearance."""
    groups: dict[Any, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    out = []
    for value, members in groups.items():
        timed = [r for r in members if "local" in r]
        weights = [r["weight_rel_error"] for r in members if r["weight_rel_error"] is not None]
        entry: dict[str, Any] = {key: value, "layers": len(members),
                                 "weight_rel_error_mean": float(np.mean(weights)) if weights
                                 else None}
        if timed:
            worst = max(timed, key=lambda r: r["local"]["rel_error"])
            entry.update(
                local_rel_error_mean=float(np.mean([r["local"]["rel_error"] for r in timed])),
                local_rel_error_max=worst["local"]["rel_error"], worst_layer=worst["name"],
                accumulated_rel_error_mean=float(np.mean([r["accumulated"]["rel_error"]
                                                          for r in timed])),
                accumulated_cosine_min=float(min(r["accumulated"]["cosine"] for r in timed)))
        out.append(entry)
    return out


def format_report(report: dict[str, Any]) -> str:
    """The report as text: blocks, depth, worst layers, final output."""
    lines = [f"quantization error on {report['sequences']} sequences (relative error "
             f"||int8 - float|| / ||float||; local = the layer alone on float inputs, "
             f"accumulated = the int8 model up to that layer)", "",
             f"{'block':<28}{'layers':>7}{'weight':>9}{'local':>9}{'local max':>11}"
             f"{'accum.':>9}{'cos min':>9}"]
    for b in report["blocks"]:
        w = b["weight_rel_error_mean"]
        lines.append(f"{b['block']:<28}{b['layers']:>7}{'' if w is None else f'{w:.4f}':>9}"
                     + (f"{b['local_rel_error_mean']:>9.4f}{b['local_rel_error_max']:>11.4f}"
                        f"{b['accumulated_rel_error_mean']:>9.4f}"
                        f"{b['accumulated_cosine_min']:>9.4f}" if "worst_layer" in b else ""))
    if report["depth"]:
        lines += ["", f"{'encoder layer':<28}{'local':>9}{'accum.':>9}"]
        for d in report["depth"]:
            lines.append(f"{d['layer']:<28}{d['local_rel_error_mean']:>9.4f}"
                         f"{d['accumulated_rel_error_mean']:>9.4f}")
    lines += ["", "largest local errors:"]
    for r in report["worst"]:
        lines.append(f"  {r['local']['rel_error']:.4f}  cos {r['local']['cosine']:.5f}  "
                     f"{r['name']}")
    o = report["output"]
    tail = f", argmax agreement {o['argmax_agreement']:.4f}" if "argmax_agreement" in o else ""
    lines += ["", f"model output ({o['field']}): relative error {o['rel_error']:.4f}, cosine "
                  f"{o['cosine']:.5f}{tail}"]
    return "\n".join(lines)


__all__ = ["BLOCKS", "block_of", "quantization_report", "format_report", "dispatch_plan",
           "dispatch_summary", "format_dispatch"]
