"""What a whole-model gradient audit reports (`tinybert_core/model_audit.py` runs it).

Per loss, one `ParamResult` per parameter: its finite-difference check (largest absolute and
relative errors, where, kinks dodged) and, when asked, its agreement with NumPy's gradient
(another backend) and with PyTorch's (the replayed ops). Parameters are grouped under the
paper's blocks (`block_of`): embedding, then per layer the input bottleneck, attention, the
stacked FFNs (or IB-BERT's and BERT's single feed-forward) and the output bottleneck, then the
pooler and the heads.
"""
from __future__ import annotations

import math

import re
from dataclasses import dataclass, field
from typing import Any

from autograd.crosscheck import Agreement
from autograd.gradcheck import InputReport
from tinybert_core.config import MobileBertConfig

BLOCK_ORDER = ["embedding", "input bottleneck", "attention", "stacked FFNs", "feed-forward",
               "output bottleneck", "pooler", "heads"]


def block_of(name: str, config: MobileBertConfig) -> str:
    """The paper's block a parameter belongs to ("layer 0: attention", "embedding", ...)."""
    m = re.search(r"\.encoder\.layer\.(\d+)\.(.*)$", name)
    if m is None:
        if ".embeddings." in name:
            return "embedding"
        return "pooler" if ".pooler." in name else "heads"
    layer, rest = m.groups()
    if rest.startswith("bottleneck."):
        part = "input bottleneck"
    elif rest.startswith("output.bottleneck."):
        part = "output bottleneck"
    elif rest.startswith("attention."):
        part = "attention"
    else:                                           # intermediate, output, ffn.i
        part = "stacked FFNs" if config.num_feedforward_networks > 1 else "feed-forward"
    return f"layer {layer}: {part}"


def block_key(block: str) -> tuple:
    m = re.match(r"layer (\d+): (.*)", block)
    if m is None:
        return (0 if block == "embedding" else 2, 0, BLOCK_ORDER.index(block))
    return (1, int(m.group(1)), BLOCK_ORDER.index(m.group(2)))


# --- the report ----------------------------------------------------------------------------------

@dataclass
class ParamResult:
    name: str
    block: str
    check: InputReport                   # finite differences along random directions
    vs_numpy: Agreement | None = None    # this backend's gradient against NumPy's
    vs_torch: Agreement | None = None    # against the ops replayed in PyTorch

    @property
    def passed(self) -> bool:
        return self.check.passed and all(a is None or a.passed
                                          for a in (self.vs_numpy, self.vs_torch))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "block": self.block, "passed": self.passed,
                **{k: v for k, v in self.check.to_dict().items() if k not in ("name", "passed")},
                "vs_numpy": self.vs_numpy and self.vs_numpy.to_dict(),
                "vs_torch": self.vs_torch and self.vs_torch.to_dict()}


@dataclass
class LossAudit:
    loss: str
    title: str
    model: str                           # the class whose parameters were checked
    value: float
    atol: float
    seconds: float
    params: list[ParamResult] = field(default_factory=list)
    output: dict[str, Agreement] = field(default_factory=dict)   # the loss value across checks

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.params) and all(a.passed for a in self.output.values())

    def worst(self, kind: str) -> tuple[float, str]:
        best, where = -1.0, ""
        for p in self.params:
            value = p.check.max_abs_error if kind == "abs" else p.check.max_rel_error
            if value is not None and value > best:
                best, where = value, p.name
        return best, where

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "title": self.title, "model": self.model,
                "value": self.value, "atol": self.atol, "seconds": round(self.seconds, 2),
                "passed": self.passed, "output": {k: a.to_dict() for k, a in self.output.items()},
                "params": [p.to_dict() for p in self.params]}


@dataclass
class ModelAuditReport:
    setup: dict[str, Any]
    losses: list[LossAudit] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.losses)

    def to_dict(self) -> dict[str, Any]:
        margin = self.setup.get("kink_margin")                # inf without relus: not JSON
        setup = {**self.setup, "kink_margin": margin if margin is None or math.isfinite(margin)
                 else None}
        return {"setup": setup, "passed": self.passed, "seconds": round(self.seconds, 1),
                "losses": [a.to_dict() for a in self.losses]}

    def format(self) -> str:
        """The setup, then per loss one line per parameter under its block."""
        s, w = self.setup, self.setup["widths"]
        lines = [f"gradient audit of {s['model']} ({s['model_type']}, {s['layers']} layers; "
                 f"widths: embedding {w['embedding_size']}, hidden {w['hidden_size']}, "
                 f"intra-block {w['intra_bottleneck_size']}, intermediate "
                 f"{w['intermediate_size']} x {w['num_feedforward_networks']} FFN, "
                 f"{w['num_attention_heads']} heads, vocab {w['vocab_size']})",
                 f"float64 on {s['device']}, weights: {s['weights']}; batch {s['batch_size']} x "
                 f"{s['max_seq_length']} tokens; teacher: {s['teacher'] or '-'}; "
                 f"{s['directions']} random directions per parameter, eps {s['eps']}, rtol "
                 f"{s['rtol']}, atol {s['atol']}; seed {s['seed']}, batch seed "
                 f"{s['batch_seed']}: " + (f"no relu input within {s['kink_margin']:.1e} of "
                                           f"its kink" if math.isfinite(s["kink_margin"])
                                           else "no relu in the model, no kinks")]
        for a in self.losses:
            bad = sum(not p.passed for p in a.params)
            lines += ["", f"{a.title}: loss {a.value:.6g}, {len(a.params)} parameters of "
                          f"{a.model}, {bad} failed (atol {a.atol:.1e}, {a.seconds:.1f} s)"]
            lines += [f"  loss value {k.replace('_', ' ')}: |diff| {e.max_abs_diff:.1e}"
                      for k, e in a.output.items()]
            width = max(len(p.name) for p in a.params)
            block = None
            for p in a.params:
                if p.block != block:
                    block = p.block
                    lines.append(f"  {block}")
                lines.append(f"    {p.name:<{width}}  {_row(p)}")
        lines += ["", f"{'passed' if self.passed else 'FAILED'}: "
                      f"{sum(len(a.params) for a in self.losses)} parameter checks over "
                      f"{len(self.losses)} losses in {self.seconds:.1f} s"]
        return "\n".join(lines)


def _row(p: ParamResult) -> str:
    c = p.check
    rel = "-" if c.max_rel_error is None else f"{c.max_rel_error:.1e}"
    out = f"{str(c.shape):<13} abs {c.max_abs_error:.1e}  rel {rel:>7}"
    if c.kinks:
        out += f"  ({c.kinks} kinks dodged)"
    for label, a in (("numpy", p.vs_numpy), ("torch", p.vs_torch)):
        if a is not None:
            out += f"  vs {label} {a.max_rel_diff:.0e}"
    return out + ("  ok" if p.passed else f"  FAIL at {c.worst_at}: analytic {c.analytic:.6g} "
                                          f"vs numeric {c.numeric:.6g}"
                  if not c.passed else "  FAIL (backend or torch disagrees)")
