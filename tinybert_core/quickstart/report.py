"""report.md of a quickstart run, written only from the files the stages left behind.

Every number in the report is read from a file in the output directory (quickstart.json,
eval/*.json, the runs' metrics.jsonl, the models' config.json and model.safetensors), and each
table names its file, so a reader can check it and `tests/` does. Pictures (training curves,
attention maps, feature-map distance) are drawn when matplotlib is installed; the tables are
there either way.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from autograd.files import atomic_write_text
from tinybert_core.quickstart.pipeline import DESCRIPTIONS, STAGES, Run

WEIGHTS = "model.safetensors"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def model_facts(model_dir: Path) -> dict[str, Any]:
    """Parameters (from config.json, counted as the model builds them) and bytes on disk."""
    from tinybert_core.config import MobileBertConfig
    from tinybert_core.models.counting import count_parameters
    config = MobileBertConfig.from_pretrained(model_dir)
    arch = (config.architectures or [None])[0]
    try:
        params = count_parameters(config, arch)
    except ValueError:
        params = count_parameters(config)
    return {"parameters": params, "bytes": (model_dir / WEIGHTS).stat().st_size,
            "architecture": arch or config.model_type}


def _curves(run: Run, pictures: list[str] | None) -> list[str]:
    from tinybert_core.teaching import plots
    lines = []
    for name in ("teacher", "student", "finetune"):
        d = run.root / name
        records = plots.read_metrics(d)
        rows = {r["curve"]: r for r in plots.curve_summary(records)}
        spans = plots.stages(records)
        lines.append(f"**{name}** (`{name}/metrics.jsonl`, {len(records)} steps; stages: "
                     + ", ".join(f"{s} {a}-{b}" for s, a, b in spans[:8])
                     + (" ..." if len(spans) > 8 else "") + ")")
        lines.append("")
        lines.append("| curve | first | last | best (step) |")
        lines.append("|---|---|---|---|")
        evals = [k for k in rows if k.startswith("eval_") and "top" not in k
                 and "distinct" not in k and "unigram" not in k]
        for key in ["loss"] + evals:
            if key in rows:
                r = rows[key]
                best = f"{r['max']:.4f}" if "loss" not in key else \
                    f"{r['min']:.4f} ({r['min_step']})"
                lines.append(f"| {key} | {r['first']:.4f} | {r['last']:.4f} | {best} |")
        if pictures is not None:
            png = f"curves-{name}.png"
            plots.plot_run(d, run.root / png, title=f"{name}: {d}")
            pictures.append(png)
            lines += ["", f"![{name} curves]({png})"]
        lines.append("")
    return lines


def write_report(run: Run) -> tuple[Path, list[str] | None]:
    """Write OUTPUT_DIR/report.md; returns it and the pictures drawn (None: no matplotlib)."""
    from tinybert_core.teaching import plots
    from autograd.serialization import load_npz
    root, st = run.root, run.state["stages"]
    pictures: list[str] | None = [] if plots.have_matplotlib() else None
    mlm = _json(root / "eval" / "mlm.json")
    task = _json(root / "eval" / "task.json")
    lat = _json(root / "eval" / "latency.json")
    ex = _json(root / "eval" / "examples.json")
    cmp_ = _json(root / "eval" / "compare.json")
    s = run.settings
    facts = {"teacher": model_facts(root / st["teacher"]["model"]),
             "student": model_facts(root / st["student"]["model"]),
             "fine-tuned student": model_facts(root / st["finetune"]["model"]),
             "fine-tuned student, int8": model_facts(root / st["quantize"]["model"])}
    total = sum(st[n]["seconds"] for n in STAGES if n in st)
    L = ["# tinybert quickstart report", "",
         f"Output directory `{root}`; machine: {platform.machine()} "
         f"{platform.processor() or ''}, {os.cpu_count()} CPUs, Python "
         f"{platform.python_version()}. Strategy: **{s.strategy}**. Every number below is "
         f"read from the file named next to it.", "",
         "## Stages (`quickstart.json`)", "", "| stage | what | seconds | resumed |",
         "|---|---|---|---|"]
    for name in STAGES:
        info = st.get(name)
        if name == "report":
            L.append(f"| report | {DESCRIPTIONS[name]} | (this file) | |")
            continue
        L.append(f"| {name} | {DESCRIPTIONS[name]} | {info['seconds']:.1f} | "
                 f"{'yes' if info.get('resumed') else 'no'} |")
    L += ["", f"Total before the report: {total:.0f} s ({total / 60:.1f} min).", "",
          "## Models (`*/config.json`, `*/model.safetensors`)", "",
          "| model | architecture | parameters | size on disk |", "|---|---|---|---|"]
    for name, f in facts.items():
        L.append(f"| {name} | {f['architecture']} | {f['parameters']:,} | {_mb(f['bytes'])} |")
    fl, q8 = facts["fine-tuned student"]["bytes"], facts["fine-tuned student, int8"]["bytes"]
    L += ["", f"int8 on disk: {_mb(q8)} vs {_mb(fl)} float32, {fl / q8:.2f}x smaller "
              f"(embeddings and the layers the quantizer keeps in float stay float32; "
              f"`{st['quantize']['report']}` lists them).", ""]
    L += _mlm_section(mlm, st)
    L += _task_section(task, lat, run)
    L += ["## Training curves", ""] + _curves(run, pictures)
    L += _compare_section(cmp_, root, pictures, load_npz)
    L += _examples_section(ex)
    path = root / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path, pictures


def _mlm_section(mlm: dict, st: dict) -> list[str]:
    t, s = mlm["teacher"], mlm["student"]
    L = ["## Held-out masked LM (`eval/mlm.json`)", "",
         f"{t['predictions']:,} masked positions of held-out text (same masks for every model).",
         "", "| model | MLM loss | accuracy | perplexity |", "|---|---|---|---|",
         f"| teacher | {t['mlm_loss']:.4f} | {_pct(t['mlm_accuracy'])} | {t['perplexity']:.1f} |",
         f"| student ({st['student']['strategy']}) | {s['mlm_loss']:.4f} | "
         f"{_pct(s['mlm_accuracy'])} | {s['perplexity']:.1f} |"]
    if "unigram_loss" in s:
        source = s.get("unigram_source", "the training corpus")
        L.append(f"| unigram baseline (token frequencies of {source}) | "
                 f"{s['unigram_loss']:.4f} | {_pct(s['unigram_accuracy'])} | |")
        if not s.get("beats_unigram", True):
            L += ["", "**The student does not beat the unigram baseline on both loss and "
                      "accuracy: it has learned no more than token frequencies.**"]
        L += ["", f"Student vs unigram baseline: loss {s['mlm_loss'] - s['unigram_loss']:+.4f},"
                  f" accuracy {100 * (s['mlm_accuracy'] - s['unigram_accuracy']):+.1f} points; "
                  f"teacher: loss {t['mlm_loss'] - t['unigram_loss']:+.4f}, accuracy "
                  f"{100 * (t['mlm_accuracy'] - t['unigram_accuracy']):+.1f} points."]
    return L + [""]


def _task_section(task: dict, lat: dict, run: Run) -> list[str]:
    fl, q8 = task["float"], task["int8"]
    metric = fl["metric"]
    a, b, base = fl["metrics"][metric], q8["metrics"][metric], fl["baseline"][metric]
    info = run.info("vocab")
    L = ["## Task (`eval/task.json`)", ""]
    if "counts" in info:
        counts = info["counts"]
        L += [f"{info['task']}: labels {', '.join(info['labels'])}; "
              f"{sum(counts['train'].values()):,} training and {sum(counts['dev'].values()):,} "
              f"dev sentences (`task/`). Licence: {info['licence']}.", ""]
    L += [f"| model | {metric} on {fl['examples']} dev examples |", "|---|---|",
          f"| fine-tuned student, float32 | {_pct(a)} |",
          f"| fine-tuned student, int8 | {_pct(b)} |",
          f"| majority baseline ({fl['baseline_kind']}) | {_pct(base)} |", "",
          f"Student above the majority baseline: {100 * (a - base):+.1f} points (float), "
          f"{100 * (b - base):+.1f} (int8); int8 minus float: {100 * (b - a):+.1f} points."
          + (" **The fine-tuned student does not beat the majority baseline: it has learned "
             "nothing about the task, and int8 = float says nothing either.**"
             if a <= base else ""), "",
          "## Latency (`eval/latency.json`)", "",
          f"Batch 1, one dev sentence at a time ({lat['sentences']} sentences, "
          f"{lat['float']['mean_tokens']:.1f} tokens on average), median (90th percentile):", "",
          "| model | ms per sentence |", "|---|---|",
          f"| float32 | {lat['float']['median_ms']:.2f} ({lat['float']['p90_ms']:.2f}) |",
          f"| int8 | {lat['int8']['median_ms']:.2f} ({lat['int8']['p90_ms']:.2f}) |", "",
          f"int8 speed-up: {lat['speedup']:.2f}x (a model this small is dominated by per-op "
          f"overhead, not by matmul arithmetic; measured on a shared machine"
          + (f"; `--int8-dispatch {lat['int8_dispatch']}`: {_DISPATCH[lat['int8_dispatch']]}"
             if "int8_dispatch" in lat else "") + ").", ""]
    return L


_DISPATCH = {"always": "every layer ran its int8 GEMM",
             "auto": "layers whose GEMM is too small for int8 to pay ran in float32 "
                     "(docs/int8.md)",
             "never": "every layer ran in float32 on its dequantized weights"}


def _compare_section(c: dict, root: Path, pictures: list[str] | None, load_npz: Any
                     ) -> list[str]:
    from tinybert_core.teaching import plots
    L = ["## Teacher and student, layer by layer (`eval/compare.json`)", "",
         f"On \"{c['text']}\": the distance feature-map transfer minimises (mean squared "
         f"difference of each block's output) and the one attention transfer minimises (KL of "
         f"the teacher's attention from the student's, per head, averaged).", "",
         "| layer | feature-map MSE | attention KL |", "|---|---|---|"]
    for r in c["layers"]:
        L.append(f"| {r['layer']} | {r['feature_map_mse']:.4f} | {max(r['attention_kl'], 0):.4f} |")
    if pictures is not None:
        maps = load_npz(root / "eval" / "attention.npz")
        plots.plot_attention({"teacher": maps["teacher"], "student": maps["student"]},
                             c["tokens"], root / "attention.png", title=c["text"])
        plots.plot_bars({"feature-map MSE": [r["feature_map_mse"] for r in c["layers"]],
                         "attention KL": [max(r["attention_kl"], 0) for r in c["layers"]]},
                        root / "feature-map-distance.png", "teacher vs student per layer",
                        "distance")
        pictures += ["attention.png", "feature-map-distance.png"]
        L += ["", "![teacher and student attention](attention.png)", "",
              "![per-layer distance](feature-map-distance.png)"]
    return L + [""]


def _examples_section(ex: dict) -> list[str]:
    L = ["## Examples (`eval/examples.json`)", "", "Fill-mask (top 3 with probabilities):", "",
         "| text | answer | teacher | student | student int8 |", "|---|---|---|---|---|"]

    def top(entries: list) -> str:
        return ", ".join(f"{_cell(t)} {p:.3f}" for t, p in entries)
    for r in ex["fill_mask"]:
        L.append(f"| {_cell(r['text'])} | {r['answer']} | {top(r['teacher'])} | "
                 f"{top(r['student'])} | {top(r['student int8'])} |")
    L += ["", "Classification (label, probability):", "",
          "| sentence | gold | student | student int8 |", "|---|---|---|---|"]
    for r in ex["classification"]:
        f, q = r["student"], r["student int8"]
        L.append(f"| {_cell(r['text'])} | {r['label']} | {f[0]} {f[1]:.2f} | {q[0]} {q[1]:.2f} |")
    return L + [""]


__all__ = ["model_facts", "write_report"]
