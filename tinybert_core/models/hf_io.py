"""Hugging Face checkpoint interop: `from_pretrained` / `save_pretrained` for every model.

A model directory is what transformers writes: `config.json` (HF field names, see config.py),
`model.safetensors` (or a sharded `model.safetensors.index.json`) and, when a tokenizer goes
with it, `vocab.txt` (+ `tokenizer_config.json`). No pickle: PyTorch `.bin` files are refused.

Loading is a checked copy, keys equal HF's (spec section 3). The loader:
- ignores the old `embeddings.position_ids` / `token_type_ids` buffers of older checkpoints;
- accepts the tied MLM decoder under either name (`cls.predictions.decoder.weight` is the word
  embedding table, `cls.predictions.decoder.bias` is `cls.predictions.bias`) and drops the alias;
- adds or strips the backbone prefix (`mobilebert.` / `bert.`), so a bare backbone loads from a
  pre-training checkpoint and a task model from a bare backbone checkpoint;
- reports missing and unexpected keys by name in `model.loading_info`. With `strict=None` (the
  default) a missing backbone key is an error but missing head weights (a fresh classifier, or
  no pooler in an MLM checkpoint) are initialised randomly; `strict=True` refuses any missing or
  unexpected key; `strict=False` refuses none. Shape mismatches are always errors.
Every error names the file it is about.

An int8 directory (config.json with a `quantization_config`, written by `tinybert quantize`)
loads through the same `from_pretrained`: the model is built with weightless placeholders and
`tinybert_core.quantization.checkpoint.fill_int8` packs each layer straight from the int8
arrays; its `save_pretrained` writes that format back. Integer arrays in a directory whose
config has no quantization_config are refused rather than cast to float.
"""
from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from autograd import nn
from autograd.files import CheckpointError, atomic_open, load_json, open_regular, read_text
from autograd.serialization import load_safetensors, read_safetensors_metadata, save_safetensors
from tinybert_core.config import CONFIG_NAME, MobileBertConfig
from tinybert_core.quantization.checkpoint import (
    QUANT_METHOD,
    fill_int8,
    int8_state_dict,
    quantization_config,
)
from tinybert_core.quantization.modules import PendingLayers, move

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
VOCAB_NAME = "vocab.txt"
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
_LAYER_RE = re.compile(r"encoder\.layer\.(\d+)\.")


class PreTrainedModel(nn.Module):
    """Base of every tinybert model: config checks, loading and saving in HF's format.

    Subclasses set `model_type` ("mobilebert" | "bert"), `base_model_prefix` (the attribute
    holding the backbone in task models) and `is_backbone` (True for the bare backbone).
    """

    model_type = "mobilebert"
    base_model_prefix = "mobilebert"
    is_backbone = True
    config: MobileBertConfig

    @classmethod
    def check_config(cls, config: Any) -> None:
        if not isinstance(config, MobileBertConfig):
            raise TypeError(f"{cls.__name__}: config must be a MobileBertConfig, got "
                            f"{type(config).__name__}")
        if config.model_type != cls.model_type:
            other = "MobileBert" if config.model_type == "mobilebert" else "Bert"
            raise ValueError(f"{cls.__name__} needs a config with model_type "
                             f"{cls.model_type!r}, got {config.model_type!r}; use the "
                             f"{other}* classes for it")

    @property
    def base_model(self) -> PreTrainedModel:
        return self if self.is_backbone else getattr(self, self.base_model_prefix)

    def _tied_aliases(self) -> dict[str, str]:
        """HF names of tied parameters -> the name our state dict keeps."""
        if not hasattr(self, "cls") or not hasattr(self.cls, "predictions"):
            return {}
        return {"cls.predictions.decoder.weight":
                f"{self.base_model_prefix}.embeddings.word_embeddings.weight",
                "cls.predictions.decoder.bias": "cls.predictions.bias"}

    # --- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | Path, config: MobileBertConfig | None = None,
                        strict: bool | None = None, dtype: Any = None, device: Any = None,
                        seed: Any = 0, **config_overrides: Any) -> PreTrainedModel:
        """Load `directory` (config.json + model.safetensors) into a new model in eval mode.

        `config` replaces config.json; `config_overrides` change fields of the loaded one
        (e.g. num_labels=3 for a new classifier). Heads missing from the checkpoint are
        initialised from `seed`. See the module docstring for `strict`.
        """
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no such model directory: "
                                    f"{d}")
        if config is None:
            config = MobileBertConfig.from_pretrained(d, **config_overrides)
        elif config_overrides:
            config = config.replace(**config_overrides)
        cls.check_config(config)
        check_vocab(d, config)
        qconfig = quantization_config(config, str(d / CONFIG_NAME))
        files, source = weight_files(d)
        shapes = read_weight_shapes(files)
        if qconfig is None:
            # Every shape is checked against the config before a parameter is allocated: a
            # config.json claiming a 10^8-token vocabulary is an error, not a 24 GiB model.
            # (int8 directories: fill_int8 checks each layer against its placeholder, and
            # placeholders allocate nothing.)
            check_float_dtypes(read_weight_dtypes(files), source)
            cls.check_weights(config, shapes, strict, source)
        state = {}
        for path in files:
            state.update(_load(path))
        if qconfig is None:
            model = cls(config, seed=seed)
            info = model.load_hf_state_dict(state, strict=strict, source=source)
        else:                             # int8: placeholders filled from the int8 arrays
            if dtype is not None and np.dtype(dtype) != np.float32:
                raise ValueError(f"{d}: an int8 model runs its float parts in float32; "
                                 f"dtype={np.dtype(dtype)} is not possible")
            model = cls(config, seed=PendingLayers())
            state, ignored = model.canonical_keys(state, bool(model._tied_aliases()))
            info = fill_int8(model, state, qconfig, source)
            info["ignored_keys"] = ignored
        model.loading_info = info
        model.name_or_path = str(d)
        if qconfig is not None:
            if device is not None:
                move(model, device)       # int8 embeddings hold no Parameter to move
        elif device is not None or dtype is not None:
            model.to(device, dtype)
        return model.eval()

    @classmethod
    def canonical_keys(cls, state: dict[str, Any], tied: bool) -> tuple[dict[str, Any], list[str]]:
        """HF names -> ours: old buffers dropped, the backbone prefix added or stripped, the tied
        decoder's aliases folded in (`tied`: the model has an MLM head). Values are untouched,
        so this works on arrays and on shapes alike. Returns (state, ignored keys)."""
        state, ignored = dict(state), []
        for key in list(state):
            if key.endswith(_BUFFER_SUFFIXES):
                ignored.append(key)
                del state[key]
        prefix = cls.base_model_prefix + "."
        if cls.is_backbone and any(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
        elif not cls.is_backbone and not any(k.startswith(prefix) for k in state):
            state = {prefix + k: v for k, v in state.items()}
        aliases = {"cls.predictions.decoder.weight":
                   f"{cls.base_model_prefix}.embeddings.word_embeddings.weight",
                   "cls.predictions.decoder.bias": "cls.predictions.bias"} if tied else {}
        for alias, canonical in aliases.items():
            if alias in state:
                if canonical in state:
                    ignored.append(alias)
                    del state[alias]
                else:
                    state[canonical] = state.pop(alias)
        return state, ignored

    @classmethod
    def key_problems(cls, params: list[str], state: list[str], strict: bool | None,
                     num_hidden_layers: int) -> tuple[list[str], list[str], list[str]]:
        """(missing, unexpected, problems) for loading keys `state` into parameters `params`.

        Whatever `strict` says (except False), weights of the backbone that the model does
        not have (more layers or feed-forward networks than the config) are an error: a
        config.json that describes fewer layers than the checkpoint holds is the wrong config.
        """
        have = set(state)
        missing = [k for k in params if k not in have]
        wanted = set(params)
        unexpected = [k for k in state if k not in wanted]
        prefix = "" if cls.is_backbone else cls.base_model_prefix + "."
        in_backbone = (lambda k: not k.startswith(("cls.", "pooler.", "classifier.",
                                                   "qa_outputs."))) if cls.is_backbone \
            else (lambda k: k.startswith(prefix) and not k.startswith(prefix + "pooler."))
        head_ok = (lambda k: not k.startswith(prefix) or k.startswith(prefix + "pooler.")) \
            if not cls.is_backbone else (lambda k: k.startswith("pooler."))
        problems = []
        if strict is None:
            bad = [k for k in missing if not head_ok(k)]
            if bad:
                problems.append(f"missing backbone weights: {', '.join(bad)}")
        elif strict:
            if missing:
                problems.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if strict is None:
            extra = [k for k in unexpected if in_backbone(k)]
            if extra:
                layers = {int(m.group(1)) for k in extra
                          if (m := _LAYER_RE.search(k)) is not None}
                where = (f"layers {min(layers)}-{max(layers)} that config.json's "
                         f"num_hidden_layers={num_hidden_layers} does not have; "
                         if layers else "")
                problems.append(f"the checkpoint holds backbone weights for {where}"
                                f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        return missing, unexpected, problems

    @classmethod
    def check_weights(cls, config: MobileBertConfig, shapes: dict[str, tuple[int, ...]],
                      strict: bool | None = None, source: str = "state dict") -> None:
        """Check a checkpoint's tensor names and shapes (its header alone) against what this
        class builds from `config`, without building it; raises CheckpointError naming
        `source`."""
        from tinybert_core.models.counting import parameter_shapes
        try:
            expected = parameter_shapes(config, cls.__name__)
        except ValueError:
            return                           # a class counting.py does not describe
        state, _ = cls.canonical_keys(shapes, "cls.predictions.bias" in expected)
        _, _, problems = cls.key_problems(list(expected), list(state), strict,
                                          config.num_hidden_layers)
        mismatched = [f"{k}: checkpoint {tuple(state[k])} vs model {tuple(v)}"
                      for k, v in expected.items() if k in state and tuple(state[k]) != v]
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched[:5])
                            + (" ..." if len(mismatched) > 5 else ""))
        if problems:
            raise CheckpointError(f"{source}: cannot load into {cls.__name__}: "
                                  + "; ".join(problems))

    def load_hf_state_dict(self, state: dict[str, np.ndarray], strict: bool | None = None,
                           source: str = "state dict") -> dict[str, list[str]]:
        """Copy an HF-named state dict in (see module docstring); returns the loading info."""
        state, ignored = self.canonical_keys(state, bool(self._tied_aliases()))
        params = dict(self.named_parameters())
        check_float_dtypes({k: np.asarray(v).dtype.str[1:] for k, v in state.items()
                            if k in params}, source)
        missing, unexpected, problems = self.key_problems(
            list(params), list(state), strict, self.config.num_hidden_layers)
        if problems:
            raise ValueError(f"{source}: cannot load into {type(self).__name__}: "
                             + "; ".join(problems))
        try:
            self.load_state_dict({k: v for k, v in state.items() if k in params}, strict=False)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e
        return {"missing_keys": missing, "unexpected_keys": unexpected, "ignored_keys": ignored}

    # --- saving ----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, tokenizer: Any = None) -> Path:
        """Write config.json and model.safetensors (atomically) into `directory`, plus the
        tokenizer files: `tokenizer`'s, else those of the directory the model was loaded from."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config = self.config.replace(architectures=[type(self).__name__])
        config.to_json(d / CONFIG_NAME)
        if quantization_config(self.config) is None:
            save_safetensors(d / WEIGHTS_NAME, self.state_dict(), metadata={"format": "pt"})
        else:                             # the int8 format (tinybert_core/quantization)
            save_safetensors(d / WEIGHTS_NAME, int8_state_dict(self),
                             metadata={"format": QUANT_METHOD})
        if tokenizer is not None:
            if len(tokenizer) != self.config.vocab_size:
                raise ValueError(f"save_pretrained: the tokenizer has {len(tokenizer)} tokens but "
                                 f"the model's vocab_size is {self.config.vocab_size}")
            tokenizer.save_pretrained(d)
        else:
            src = Path(getattr(self, "name_or_path", "") or d)
            if src.resolve() != d.resolve():
                for name in TOKENIZER_FILES:
                    copy_tokenizer_file(src / name, d / name)
        return d


def weight_files(directory: Path) -> tuple[list[Path], str]:
    """The safetensors files of a model directory (one, or the shards its index names) and
    the file to name in errors. Shard names must stay inside the directory: no absolute
    path, no "..", nothing but a relative path to a file."""
    single, index = directory / WEIGHTS_NAME, directory / WEIGHTS_INDEX_NAME
    if os.path.lexists(single):
        return [single], str(single)
    if os.path.lexists(index):
        data = load_json(index, "safetensors index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"safetensors index {index} needs a non-empty weight_map "
                                  f"object (tensor name -> file name)")
        names = []
        for tensor, name in weight_map.items():
            if not isinstance(name, str) or not _safe_name(name):
                raise CheckpointError(f"safetensors index {index}: tensor {tensor!r} maps to "
                                      f"{name!r}, which is not a file name inside the model "
                                      f"directory")
            names.append(name)
        return [directory / n for n in sorted(set(names))], str(index)
    legacy = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt")]
    hint = (f"; found {', '.join(legacy)}, which needs pickle: convert it to safetensors with "
            f"transformers' save_pretrained(safe_serialization=True)") if legacy else ""
    raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}{hint}")


def _safe_name(name: str) -> bool:
    """A relative path that cannot leave its directory, whatever the platform."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and \
        not PureWindowsPath(name).drive and all(p not in ("..", ".", "") for p in parts) and \
        "\0" not in name and name.endswith(".safetensors")


def read_weight_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape over every weight file, from the headers alone (no data read)."""
    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, Path] = {}
    for path in files:
        try:
            header = read_safetensors_metadata(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint file not found: {path}") from None
        for name, (_, shape) in header.tensors.items():
            if name in shapes:
                raise CheckpointError(f"tensor {name!r} is in both {owner[name]} and {path}")
            shapes[name], owner[name] = shape, path
    return shapes


def read_weight_dtypes(files: list[Path]) -> dict[str, str]:
    """Tensor name -> the dtype its file's header names ("F32", "I8", ...), data unread."""
    return {name: dtype for path in files
            for name, (dtype, _) in read_safetensors_metadata(path).tensors.items()}


def check_float_dtypes(dtypes: dict[str, str], source: str) -> None:
    """A float model's weights must be floating point (`dtypes`: safetensors names or NumPy
    dtype strings): integer arrays are an int8 checkpoint whose config.json went missing,
    never something to cast."""
    not_float = [k for k, t in dtypes.items()
                 if not t.upper().startswith(("F", "BF")) and not k.endswith(_BUFFER_SUFFIXES)]
    if not_float:
        raise CheckpointError(f"{source}: {not_float[0]} holds {dtypes[not_float[0]]} values "
                              f"but the config has no quantization_config: an int8 "
                              f"checkpoint needs the config.json written with it")


def read_weights(directory: Path) -> tuple[dict[str, np.ndarray], str]:
    """The state dict of a model directory (single or sharded safetensors) and its file name."""
    files, source = weight_files(directory)
    read_weight_shapes(files)            # names and duplicates checked before any data is read
    state: dict[str, np.ndarray] = {}
    for path in files:
        state.update(_load(path))
    return state, source


def _load(path: Path) -> dict[str, np.ndarray]:
    """A weight file's tensors; NaN or inf in a floating-point tensor is an error (a corrupt
    file, or a diverged run's weights, either way not a model to use)."""
    try:
        state = load_safetensors(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    for name, value in state.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or inf")
    return state


def copy_tokenizer_file(src: Path, dst: Path) -> None:
    """Copy one tokenizer file if `src` is there, never through a symbolic link (a link to
    ~/.ssh/id_rsa would otherwise be copied into a model directory meant for sharing)."""
    try:
        info = os.lstat(src)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(f"save_pretrained: {src} is a symbolic link; tokenizer files are not "
                         f"copied through links: pass tokenizer= to save_pretrained instead")
    with open_regular(src, "tokenizer file") as f:
        data = f.read()
    with atomic_open(dst, "wb") as f:
        f.write(data)


def check_vocab(directory: Path, config: MobileBertConfig) -> None:
    """A vocab.txt beside the weights must have exactly vocab_size lines."""
    vocab = directory / VOCAB_NAME
    if not os.path.lexists(vocab):
        return
    n = sum(1 for _ in io.StringIO(read_text(vocab, "vocabulary file"), newline=""))
    if n != config.vocab_size:
        raise CheckpointError(f"{vocab}: the vocabulary has {n} tokens but the model's vocab_size "
                         f"(embedding table rows) is {config.vocab_size}; the tokenizer and "
                         f"the checkpoint do not belong together")
