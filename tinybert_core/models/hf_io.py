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

import json
from pathlib import Path
from typing import Any

import numpy as np

import backends
from autograd import nn
from autograd.serialization import CheckpointError, atomic_open, load_safetensors, save_safetensors
from tinybert_core.config import CONFIG_NAME, MobileBertConfig
from tinybert_core.quantization.checkpoint import (
    QUANT_METHOD,
    fill_int8,
    int8_state_dict,
    quantization_config,
)
from tinybert_core.quantization.modules import PendingLayers, QuantizedEmbedding

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
VOCAB_NAME = "vocab.txt"
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


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
        state, source = read_weights(d)
        if qconfig is None:
            model = cls(config, seed=seed)
            info = model.load_hf_state_dict(state, strict=strict, source=source)
        else:                             # int8: placeholders filled from the int8 arrays
            if dtype is not None and np.dtype(dtype) != np.float32:
                raise ValueError(f"{d}: an int8 model runs its float parts in float32; "
                                 f"dtype={np.dtype(dtype)} is not possible")
            model = cls(config, seed=PendingLayers())
            state, ignored = model.canonical_state(state)
            info = fill_int8(model, state, qconfig, source)
            info["ignored_keys"] = ignored
            dtype = None
        model.loading_info = info
        model.name_or_path = str(d)
        if device is not None or dtype is not None:
            model.to(device, dtype)
            for m in model.modules():
                if isinstance(m, QuantizedEmbedding):       # no Parameter to move: a name
                    m.output_device = backends.get_backend(device).name
        return model.eval()

    def canonical_state(self, state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """`state` with this model's key names: old buffers dropped, the backbone prefix added
        or stripped, the tied decoder alias resolved (module docstring). Returns it and the
        names it dropped."""
        state, ignored = dict(state), []
        for key in list(state):
            if key.endswith(_BUFFER_SUFFIXES):
                ignored.append(key)
                del state[key]
        prefix = self.base_model_prefix + "."
        if self.is_backbone and any(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
        elif not self.is_backbone and not any(k.startswith(prefix) for k in state):
            state = {prefix + k: v for k, v in state.items()}
        for alias, canonical in self._tied_aliases().items():
            if alias in state:
                if canonical in state:
                    ignored.append(alias)
                    del state[alias]
                else:
                    state[canonical] = state.pop(alias)
        return state, ignored

    def load_hf_state_dict(self, state: dict[str, np.ndarray], strict: bool | None = None,
                           source: str = "state dict") -> dict[str, list[str]]:
        """Copy an HF-named state dict in (see module docstring); returns the loading info."""
        state, ignored = self.canonical_state(state)
        prefix = self.base_model_prefix + "."
        params = dict(self.named_parameters())
        not_float = [k for k in params
                     if k in state and getattr(state[k], "dtype", np.dtype("f4")).kind != "f"]
        if not_float:
            raise ValueError(f"{source}: {not_float[0]} holds {state[not_float[0]].dtype} "
                             f"values but the config has no quantization_config: an int8 "
                             f"checkpoint needs the config.json written with it")
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        head_ok = (lambda k: not k.startswith(prefix) or k.startswith(prefix + "pooler.")) \
            if not self.is_backbone else (lambda k: k.startswith("pooler."))
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
                    if (src / name).is_file():
                        with atomic_open(d / name, "wb") as f:
                            f.write((src / name).read_bytes())
        return d


def read_weights(directory: Path) -> tuple[dict[str, np.ndarray], str]:
    """The state dict of a model directory (single or sharded safetensors) and its file name."""
    single, index = directory / WEIGHTS_NAME, directory / WEIGHTS_INDEX_NAME
    if single.is_file():
        return _load(single), str(single)
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index}: not a safetensors index (needs a weight_map): "
                                  f"{e}") from e
        state: dict[str, np.ndarray] = {}
        for name in files:
            state.update(_load(directory / name))
        return state, str(index)
    legacy = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt")]
    hint = (f"; found {', '.join(legacy)}, which needs pickle: convert it to safetensors with "
            f"transformers' save_pretrained(safe_serialization=True)") if legacy else ""
    raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}{hint}")


def _load(path: Path) -> dict[str, np.ndarray]:
    try:
        return load_safetensors(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    except CheckpointError as e:
        msg = str(e) if str(path) in str(e) else f"{path}: {e}"
        raise CheckpointError(f"cannot load checkpoint: {msg}") from e


def check_vocab(directory: Path, config: MobileBertConfig) -> None:
    """A vocab.txt beside the weights must have exactly vocab_size lines."""
    vocab = directory / VOCAB_NAME
    if not vocab.is_file():
        return
    with open(vocab, encoding="utf-8", newline="") as f:
        n = sum(1 for _ in f)
    if n != config.vocab_size:
        raise ValueError(f"{vocab}: the vocabulary has {n} tokens but the model's vocab_size "
                         f"(embedding table rows) is {config.vocab_size}; the tokenizer and "
                         f"the checkpoint do not belong together")
