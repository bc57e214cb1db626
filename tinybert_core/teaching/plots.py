"""Pictures of runs and models: training curves from `metrics.jsonl`, attention heat-maps.

matplotlib is the optional extra `tinybert[plots]`, imported here lazily (inside the functions
that draw, with the Agg backend, so nothing needs a display). Without it, `require_matplotlib`
raises `PlotsUnavailable`, a ValueError whose one-line message says how to install it; the
readers and summaries (`read_metrics`, `curve_summary`) need only the standard library.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from autograd.files import atomic_open

METRICS_NAME = "metrics.jsonl"
INSTALL_HINT = "pip install 'tinybert[plots]' (or: pip install matplotlib)"
# Record keys that are not curves.
_NOT_CURVES = {"step", "stage", "total_steps", "seconds", "epoch"}
_COUNTS = ("predictions", "examples", "features")     # counts, not curves


class PlotsUnavailable(ValueError):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the Agg backend, or PlotsUnavailable naming the install line."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotsUnavailable(f"drawing needs matplotlib, which is not installed: "
                               f"{INSTALL_HINT}") from None
    return plt


def have_matplotlib() -> bool:
    try:
        require_matplotlib()
    except PlotsUnavailable:
        return False
    return True


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of RUN_DIR/metrics.jsonl (a torn last line, from a killed run, skipped)."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        inside = sorted(p.parent.name for p in Path(run_dir).glob(f"*/{METRICS_NAME}"))
        hint = f" (its runs: {', '.join(inside)})" if inside else \
            "; a run directory of pretrain, distill or finetune holds one"
        raise ValueError(f"{run_dir}: no {METRICS_NAME}{hint}")
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines):
                continue
            raise ValueError(f"{path}: line {i} is not JSON") from None
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}: line {i} is not a metrics record (no 'step')")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no records yet")
    return records


def curves(records: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (steps, values) for every numeric field logged in some records."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for r in records:
        for key, value in r.items():
            if key in _NOT_CURVES or key.endswith(_COUNTS) or isinstance(value, bool) or \
                    not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            steps, values = out.setdefault(key, ([], []))
            steps.append(r["step"])
            values.append(float(value))
    return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in out.items()}


def stages(records: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(stage name, first step, last step) in order."""
    out: list[tuple[str, int, int]] = []
    for r in records:
        name = r.get("stage", "")
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1], r["step"])
        else:
            out.append((name, r["step"], r["step"]))
    return out


def curve_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per curve: first, last, min and max value with their steps (the plot as a table)."""
    rows = []
    for name, (steps, values) in curves(records).items():
        rows.append({"curve": name, "points": len(values), "first": float(values[0]),
                     "last": float(values[-1]), "min": float(values.min()),
                     "min_step": int(steps[values.argmin()]), "max": float(values.max())})
    return rows


def _panels(names: list[str]) -> list[tuple[str, list[str]]]:
    evals = [n for n in names if n.startswith("eval_")]
    eval_losses = [n for n in evals if "loss" in n]
    rates = [n for n in names if n in ("lr", "grad_norm")]
    speed = [n for n in names if n == "tokens_per_s"]
    losses = [n for n in names if n not in evals + rates + speed]
    panels = [("training losses", losses), ("held-out loss", eval_losses),
              ("held-out metrics", [n for n in evals if n not in eval_losses]),
              ("learning rate and gradient norm", rates)]
    return [(title, keys) for title, keys in panels if keys]


def plot_run(run_dir: Path, output: Path, title: str | None = None) -> Path:
    """Training curves of a run as one PNG: losses, evaluations, learning rate; the stages
    shaded and named. Returns `output`."""
    plt = require_matplotlib()
    records = read_metrics(run_dir)
    data = curves(records)
    panels = _panels(list(data))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.8 * len(panels)), squeeze=False,
                             sharex=True)
    spans = stages(records)
    for ax, (panel, keys) in zip(axes[:, 0], panels):
        log_scale = panel.startswith("learning") or (
            panel == "training losses" and all(data[k][1].min() > 0 for k in keys))
        for key in keys:
            steps, values = data[key]
            if log_scale:
                keep = values > 0
                steps, values = steps[keep], values[keep]
            style = "o-" if len(values) < 30 else "-"
            ax.plot(steps, values, style, label=key, markersize=3, linewidth=1)
        if log_scale:
            ax.set_yscale("log")
        for i, (_, first, last) in enumerate(spans):
            if i % 2:
                ax.axvspan(first - 0.5, last + 0.5, color="0.92", zorder=0)
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    top = axes[0, 0]
    if 1 < len(spans) <= 12:
        for name, first, last in spans:
            top.annotate(name, ((first + last) / 2, 1.0), xycoords=("data", "axes fraction"),
                         ha="center", va="bottom", fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title or f"{run_dir}", fontsize=11, y=1.0)
    fig.tight_layout()
    return _save(fig, plt, output)


def plot_attention(maps: dict[str, np.ndarray], tokens: list[str], output: Path,
                   title: str = "") -> Path:
    """Heat-maps of attention probabilities: one row per (model, layer), one column per head.

    `maps` is model label -> (L, H, T, T) array (rows: queries, columns: keys). Models side by
    side (teacher, student) appear as consecutive rows of the same layer.
    """
    plt = require_matplotlib()
    labels = list(maps)
    layers = max(m.shape[0] for m in maps.values())
    heads = max(m.shape[1] for m in maps.values())
    rows = [(label, layer) for layer in range(layers) for label in labels
            if layer < maps[label].shape[0]]
    t = len(tokens)
    vmax = max(float(m.max()) for m in maps.values()) or 1.0   # one colour scale for all
    cell = max(1.6, min(3.2, 0.22 * t + 0.6))
    fig, axes = plt.subplots(len(rows), heads, figsize=(cell * heads + 1, cell * len(rows) + 0.6),
                             squeeze=False)
    for r, (label, layer) in enumerate(rows):
        for h in range(heads):
            ax = axes[r, h]
            ax.set_xticks([])
            ax.set_yticks([])
            if h >= maps[label].shape[1]:
                ax.axis("off")
                continue
            ax.imshow(maps[label][layer, h], vmin=0.0, vmax=vmax, cmap="viridis")
            if r == 0:
                ax.set_title(f"head {h}", fontsize=8)
            if h == 0:
                ax.set_ylabel(f"{label}\nlayer {layer}", fontsize=8)
            if t <= 16 and r == len(rows) - 1:
                ax.set_xticks(range(t))
                ax.set_xticklabels(tokens, rotation=90, fontsize=6)
            if t <= 16 and h == 0:
                ax.set_yticks(range(t))
                ax.set_yticklabels(tokens, fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, output)


def plot_bars(values: dict[str, list[float]], output: Path, title: str, ylabel: str) -> Path:
    """Grouped bars per layer: label -> one value per layer (e.g. feature-map distance)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    n = len(values)
    width = 0.8 / max(n, 1)
    for i, (label, vals) in enumerate(values.items()):
        x = np.arange(len(vals)) + (i - (n - 1) / 2) * width
        ax.bar(x, vals, width, label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, plt, output)


def _save(fig: Any, plt: Any, output: Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(output, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return output


__all__ = ["INSTALL_HINT", "PlotsUnavailable", "curve_summary", "curves", "have_matplotlib",
           "plot_attention", "plot_bars", "plot_run", "read_metrics", "require_matplotlib",
           "stages"]
