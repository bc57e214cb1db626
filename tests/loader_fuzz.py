"""A seeded fuzzer for every loader: malformed files in, the project's own error out.

Each case copies a valid seed (a tiny model directory, a sharded one, a training checkpoint, a
weights .npz) into a fresh directory, breaks one file in one way, calls one loader and sorts
the outcome:

- clean: the project's error (CheckpointError, or FileNotFoundError for a file that is not
  there) whose message names a file of the case;
- no_name: the project's error type, but no file named (`lenient`: any ValueError/TypeError/
  FileNotFoundError raised by the project's own code counts as its error type, which is how
  the errors looked before CheckpointError covered every loader);
- other: any other exception (UnicodeDecodeError, KeyError, RecursionError, LZMAError, ...);
- hang: the loader ran past the per-case time limit (a FIFO, a billion layers);
- memory: MemoryError anywhere in the exception chain (run under a RLIMIT_AS cap, so that a
  file claiming gigabytes fails instead of reserving them);
- accepted: the loader returned. Fine for a harmless mutation (a flipped float byte); for a
  mutation that must be refused (`must_fail`) it is counted as `accepted_bad`;
- escaped: a weight file outside the model directory was read (path traversal);
- changed: a failed `load_training_checkpoint` modified the model or optimizer.

Run it directly for the figures: `python tests/loader_fuzz.py --cases 12000 --seed 0`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograd import optim  # noqa: E402
from autograd.serialization import (CheckpointError, load_npz, load_safetensors,  # noqa: E402
                                    read_safetensors_metadata, save_npz, save_safetensors)
from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining  # noqa: E402
from tinybert_core.models.auto import load_model  # noqa: E402
from tinybert_core.training.checkpoint import (load_training_checkpoint,  # noqa: E402
                                               save_training_checkpoint)

from fuzz_mutations import (FILE_KINDS, mutate_bytes, mutate_json,  # noqa: E402
                            mutate_npz, mutate_npz_meta, mutate_safetensors, semantic_config,
                            traversal)

PROJECT_DIRS = tuple(str(ROOT / d) + os.sep for d in ("autograd", "backends", "tinybert_core"))
TINY = dict(vocab_size=12, hidden_size=16, embedding_size=8, num_hidden_layers=2,
            num_attention_heads=2, intra_bottleneck_size=8, intermediate_size=8,
            max_position_embeddings=8, attention_probs_dropout_prob=0.1)
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "whale", "sea", "ship", "a",
          ".", "##s"]


class Hang(BaseException):
    """Raised by the alarm: the case ran too long (BaseException, so no loader catches it)."""


@dataclass
class Seeds:
    root: Path
    config: dict[str, Any] = field(default_factory=dict)
    target: tuple | None = None          # (model, optimizer) that checkpoint cases load into

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def sharded_dir(self) -> Path:
        return self.root / "sharded"


def _model(config: MobileBertConfig, seed: int = 0) -> MobileBertForPreTraining:
    return MobileBertForPreTraining(config, seed=seed)


def make_seeds(root: Path) -> Seeds:
    """Valid files of every kind the loaders read."""
    config = MobileBertConfig.from_pretrained("mobilebert", **TINY)
    (root / "tok").mkdir(parents=True)
    (root / "tok" / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS))
    tokenizer = BertTokenizer(root / "tok" / "vocab.txt")
    model = _model(config)
    model.save_pretrained(root / "model", tokenizer=tokenizer)
    state = model.state_dict()
    names = list(state)
    shard_dir = root / "sharded"
    model.save_pretrained(shard_dir, tokenizer=tokenizer)
    (shard_dir / "model.safetensors").unlink()
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:]), start=1):
        fname = f"model-0000{i}-of-00002.safetensors"
        save_safetensors(shard_dir / fname, {k: state[k] for k in part})
        weight_map.update({k: fname for k in part})
    (shard_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2))
    save_safetensors(root / "outside.safetensors", {k: state[k] for k in names[half:]})
    save_npz(root / "weights.npz", state)
    # A checkpoint after one real step: LAMB moments, dropout generators, a data position.
    model.train()
    opt = optim.LAMB(model, lr=1e-3)
    ids = np.array([[2, 5, 6, 4, 3]])
    out = model(ids, masked_positions=np.array([[3]]))
    (out.prediction_logits.sum() + out.seq_relationship_logits.sum()).backward()
    opt.step()
    save_training_checkpoint(root / "checkpoint.npz", model, opt, 1, config.to_dict(),
                             data_state={"epoch": 0, "offset": 3, "order": np.arange(4)},
                             extra={"args": {"lr": 1e-3}})
    return Seeds(root, config.to_dict())


# ----------------------------------------------------------------------------- cases

@dataclass
class Case:
    loader: str
    mutation: str
    must_fail: bool
    call: Callable[[], Any]
    names: list[str]                     # file names a clean message may name
    target: Path | None = None           # the checkpoint whose failed load must change nothing
    state: tuple | None = None
    case_dir: Path | None = None         # a message naming any file under it names a file


def _copy(seeds: Seeds, what: str, case_dir: Path) -> Path:
    src = seeds.root / what
    dst = case_dir / what
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst


def _break_file(rng: np.random.Generator, path: Path, kind: str, loader: str
                ) -> tuple[str, bool]:
    """Break `path` in place; returns (mutation name, must the loader refuse it)."""
    roll = rng.random()
    if roll < 0.06:
        return FILE_KINDS(rng, path), True
    if kind == "json" and roll < 0.75:
        return mutate_json(rng, path)
    if kind == "config" and roll < 0.85:
        if rng.random() < 0.4:
            return semantic_config(rng, path, model=loader in ("model", "sharded"))
        return mutate_json(rng, path)
    if kind == "npz" and roll < 0.8:
        return mutate_npz(rng, path)
    if kind == "checkpoint" and roll < 0.85:
        return (mutate_npz_meta(rng, path) if rng.random() < 0.6 else mutate_npz(rng, path))
    if path.suffix == ".safetensors" and roll < 0.7:
        return mutate_safetensors(rng, path)
    return mutate_bytes(rng, path, text=kind in ("text", "json", "config"))


def _snapshot(model: Any, opt: Any) -> tuple:
    """What a load would replace: loading assigns new arrays, never writes into old ones, so
    the identities tell whether anything was touched."""
    return ([id(p.data) for p in model.parameters()], id(opt.state), opt.step_count,
            {name: id(m._generators) for name, m in model.named_modules()
             if hasattr(m, "_generators")})


def make_case(rng: np.random.Generator, seeds: Seeds, case_dir: Path) -> Case:
    loader = str(rng.choice(["safetensors", "safetensors-header", "npz", "checkpoint",
                             "config", "tokenizer", "model", "model", "sharded"]))
    if loader in ("safetensors", "safetensors-header"):
        path = _copy(seeds, "outside.safetensors", case_dir)
        mutation, must = _break_file(rng, path, "binary", loader)
        fn = load_safetensors if loader == "safetensors" else read_safetensors_metadata
        return Case(loader, mutation, must, lambda: fn(path), [path.name])
    if loader == "npz":
        path = _copy(seeds, "weights.npz", case_dir)
        mutation, must = _break_file(rng, path, "npz", loader)
        return Case(loader, mutation, must, lambda: load_npz(path), [path.name])
    if loader == "checkpoint":
        path = _copy(seeds, "checkpoint.npz", case_dir)
        mutation, must = _break_file(rng, path, "checkpoint", loader)
        if seeds.target is None:          # one model for every case, rebuilt once loaded
            config = MobileBertConfig.from_dict(seeds.config)
            model = _model(config, seed=7)
            seeds.target = (model, optim.LAMB(model, lr=1e-3))
        model, opt = seeds.target
        return Case(loader, mutation, must,
                    lambda: load_training_checkpoint(path, model, opt, seeds.config),
                    [path.name], target=path, state=(model, opt, _snapshot(model, opt)))
    directory = _copy(seeds, "sharded" if loader == "sharded" else "model", case_dir)
    files = sorted(p.name for p in directory.iterdir())
    if loader == "config":
        name = "config.json"
    elif loader == "tokenizer":
        name = str(rng.choice(["vocab.txt", "tokenizer_config.json"]))
    else:
        name = str(rng.choice(files))
    kind = {"config.json": "config", "vocab.txt": "text"}.get(
        name, "json" if name.endswith(".json") else "binary")
    if loader == "sharded" and name.endswith("index.json") and rng.random() < 0.4:
        mutation, must = traversal(rng, directory / name, seeds.root)
    else:
        mutation, must = _break_file(rng, directory / name, kind, loader)
        if loader in ("model", "sharded") and name.startswith(("tokenizer_", "special_")):
            must = False                  # a model loader does not read the tokenizer's files
    if loader == "config":
        call = lambda: MobileBertConfig.from_pretrained(directory)  # noqa: E731
    elif loader == "tokenizer":
        call = lambda: BertTokenizer.from_pretrained(directory)  # noqa: E731
    else:
        call = lambda: load_model(directory, "pretraining")  # noqa: E731
    return Case(loader, f"{name}: {mutation}", must, call, files)


# ----------------------------------------------------------------------------- running

def _raised_by_project(e: BaseException) -> bool:
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and last.startswith(PROJECT_DIRS)


def _chain(e: BaseException) -> list[BaseException]:
    out = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def classify(case: Case, error: BaseException | None, strict: bool) -> str:
    if error is None:
        return "accepted_bad" if case.must_fail else "accepted"
    if isinstance(error, Hang):
        return "hang"
    if any(isinstance(x, MemoryError) for x in _chain(error)):
        return "memory"
    own = isinstance(error, CheckpointError) or (
        isinstance(error, FileNotFoundError) and error.filename is None)   # our message
    if not strict and not own:
        own = type(error) in (ValueError, TypeError, FileNotFoundError) and \
            _raised_by_project(error)
    if not own:
        return "other"
    text = str(error)
    named = any(n in text for n in case.names) or (
        case.case_dir is not None and re.search(re.escape(str(case.case_dir)) + r"/\S+\.[a-z]+",
                                                text))
    return "clean" if named else "no_name"


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang()


def run_case(case: Case, seeds: Seeds, timeout: float, strict: bool) -> tuple[str, str]:
    error: BaseException | None = None
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            case.call()
        finally:                          # an alarm that fires here is still this case's
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as e:  # noqa: BLE001 - sorting every outcome is the point
        if isinstance(e, KeyboardInterrupt):
            raise
        error = e
    kind = classify(case, error, strict)
    if kind in ("accepted", "accepted_bad") and "traversal" in case.mutation:
        kind = "escaped"
    if case.state is not None:
        model, opt, before = case.state
        if _snapshot(model, opt) != before:
            seeds.target = None           # loaded (or half-loaded): the next case builds anew
            if error is not None and kind != "hang":
                kind = "changed"
    detail = "" if error is None else \
        f"{type(error).__name__}: {str(error)[:200]}"
    return kind, detail


def limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus `extra_bytes`."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, vm + extra_bytes))


def fuzz(cases: int, seed: int, timeout: float = 2.0, strict: bool = True,
         examples: int = 3, show_all: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run `cases` seeded cases; returns the figures and a few examples of each bad outcome."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    types: Counter = Counter()
    by_loader: dict[str, Counter] = {}
    shown: dict[str, list[str]] = {}
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seeds = make_seeds(Path(tmp) / "seeds")
            for i in range(cases):
                case_dir = Path(tmp) / f"case{i}"
                case_dir.mkdir()
                case = make_case(rng, seeds, case_dir)
                case.case_dir = case_dir
                kind, detail = run_case(case, seeds, timeout, strict)
                counts[kind] += 1
                by_loader.setdefault(case.loader, Counter())[kind] += 1
                if kind == "other":
                    types[detail.split(":")[0]] += 1
                if kind in show_all:
                    print(f"{kind}: {case.loader} / {case.mutation} -> {detail}",
                          file=sys.stderr)
                if kind not in ("clean", "accepted") and len(shown.setdefault(kind, [])) < examples:
                    shown[kind].append(f"{case.loader} / {case.mutation} -> {detail}")
                _remove(case_dir)
    finally:
        signal.signal(signal.SIGALRM, old)
    return {"tried": cases, "seed": seed, "strict": strict, "seconds": time.perf_counter() - start,
            **{k: counts.get(k, 0) for k in ("clean", "accepted", "no_name", "other", "hang",
                                              "memory", "accepted_bad", "escaped", "changed")},
            "other_types": dict(types.most_common()),
            "by_loader": {k: dict(v) for k, v in sorted(by_loader.items())},
            "examples": shown}


def _remove(path: Path) -> None:
    shutil.rmtree(path)                   # unlinks symlinks, never follows them


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--memory-limit-mb", type=int, default=1024,
                        help="address space allowed above the size at start")
    parser.add_argument("--show", default="", help="print every case of these kinds, e.g. "
                        "other,accepted_bad")
    parser.add_argument("--lenient", action="store_true",
                        help="count any ValueError/TypeError raised by project code as its own")
    args = parser.parse_args(argv)
    limit_memory(args.memory_limit_mb << 20)
    report = fuzz(args.cases, args.seed, args.timeout, strict=not args.lenient,
                  show_all=tuple(filter(None, args.show.split(","))))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
