"""`MobileBertConfig`: every size and switch of MobileBERT, its IB-BERT teacher and plain BERT.

One dataclass with Hugging Face's field names (`configuration_mobilebert.py`, plus the BERT fields
of `configuration_bert.py`), so a `config.json` written by transformers loads as is and ours loads
in transformers. `model_type` says which family the sizes describe: "mobilebert" (MobileBERT,
MobileBERT-TINY, the IB-BERT teacher: same classes, different values) or "bert" (BertModel).

Derived, as in HF: `true_hidden_size` = `intra_bottleneck_size` when `use_bottleneck`, else
`hidden_size` (the width inside a block, where attention and the FFNs run).

tinybert additions, all defaulting to HF's behaviour:
- `attention_mask_value`: None adds finfo(dtype).min to masked keys (HF); a number (Google's
  -6.0, spec 2.3) replaces the scaled scores of masked keys by that constant.
The operational optimizations of the paper are plain switches: `normalization_type`
("no_norm" | "layer_norm") and `hidden_act` ("relu" | "gelu" | ...).

Presets (`MobileBertConfig.from_pretrained(name)`): spec section 1.1 for mobilebert,
mobilebert-tiny, ib-bert-large, bert-base, bert-large; small ones for tests and laptops:
mobilebert-4l (4 layers, full widths) and a teacher/student pair ib-bert-small /
mobilebert-small (same vocabulary, embedding width, inter-block width, heads and depth, so
feature-map and attention transfer line up layer by layer).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograd.files import CheckpointError, load_json

CONFIG_NAME = "config.json"

# Upper bounds far above any published BERT-family model (BERT-large: 24 layers, width 1024,
# 30,522 tokens; multilingual vocabularies: 250,000): a config beyond them is a corrupt or
# hostile file, refused before a model of terabytes or a billion layers is built.
LIMITS = {"vocab_size": 1 << 22, "embedding_size": 1 << 16, "hidden_size": 1 << 16,
          "num_hidden_layers": 1000, "num_attention_heads": 1 << 12,
          "intermediate_size": 1 << 18, "max_position_embeddings": 1 << 20,
          "type_vocab_size": 1 << 12, "intra_bottleneck_size": 1 << 16,
          "num_feedforward_networks": 64, "num_labels": 1 << 20}

# hidden_act name -> (kind, approximate): HF's ACT2FN names. "gelu" is the exact erf form;
# "gelu_new" and friends are the tanh approximation (Google's BERT/IB-BERT code).
ACTIVATIONS: dict[str, tuple[str, bool]] = {
    "relu": ("relu", False),
    "relu6": ("relu6", False),
    "gelu": ("gelu", False),
    "gelu_python": ("gelu", False),
    "gelu_new": ("gelu", True),
    "gelu_pytorch_tanh": ("gelu", True),
    "gelu_fast": ("gelu", True),
    "gelu_accurate": ("gelu", True),
}
NORMALIZATIONS = ("no_norm", "layer_norm")
MODEL_TYPES = ("mobilebert", "bert")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# Keys transformers writes that tinybert neither needs nor keeps (silently ignored on load).
_IGNORED_KEYS = {
    "transformers_version", "torch_dtype", "dtype", "_name_or_path", "use_cache",
    "position_embedding_type", "is_decoder", "add_cross_attention", "chunk_size_feed_forward",
    "output_hidden_states", "output_attentions", "return_dict", "gradient_checkpointing",
    "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "true_hidden_size",
    "_attn_implementation_autoset", "tokenizer_class", "output_past",
}


@dataclass
class MobileBertConfig:
    """Sizes and switches of a MobileBERT / IB-BERT / BERT model (HF field names).

    Defaults are HF's `MobileBertConfig()` (MobileBERT with classifier_activation=True); the
    released checkpoint's values are the "mobilebert" preset. Invalid combinations raise
    ValueError/TypeError naming the fields.
    """

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 512
    num_hidden_layers: int = 24
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "relu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"
    classifier_activation: bool = True
    classifier_dropout: float | None = None
    num_labels: int = 2
    problem_type: str | None = None
    id2label: dict[int, str] | None = None
    tie_word_embeddings: bool = True
    attention_mask_value: float | None = None
    model_type: str = "mobilebert"
    architectures: list[str] | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    # --- derived sizes ---------------------------------------------------------------------------
    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck width, or hidden_size without bottlenecks."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size

    @property
    def attention_input_size(self) -> int:
        """Width of the tensor that feeds the query and key projections (spec 2.4 table)."""
        if self.use_bottleneck and not (self.use_bottleneck_attention
                                        or self.key_query_shared_bottleneck):
            return self.hidden_size        # IB-BERT: Q, K from the 512-wide block input
        return self.true_hidden_size

    @property
    def value_input_size(self) -> int:
        """Width of the tensor that feeds the value projection."""
        return self.true_hidden_size if self.use_bottleneck_attention else self.hidden_size

    @property
    def label_names(self) -> list[str]:
        ids = self.id2label or {}
        return [ids.get(i, f"LABEL_{i}") for i in range(self.num_labels)]

    # --- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise TypeError/ValueError naming the first inconsistent field(s)."""
        ints = ["vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                "num_attention_heads", "intermediate_size", "max_position_embeddings",
                "type_vocab_size", "intra_bottleneck_size", "num_feedforward_networks",
                "num_labels"]
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"MobileBertConfig: {name} must be an int, got {value!r}")
            if not 1 <= value <= LIMITS[name]:
                raise ValueError(f"MobileBertConfig: {name} must be between 1 and "
                                 f"{LIMITS[name]:,}, got {value:,}")
        bools = ["trigram_input", "use_bottleneck", "use_bottleneck_attention",
                 "key_query_shared_bottleneck", "classifier_activation", "tie_word_embeddings"]
        for name in bools:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"MobileBertConfig: {name} must be true or false, "
                                f"got {getattr(self, name)!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            p = getattr(self, name)
            if p is None and name == "classifier_dropout":
                continue
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"MobileBertConfig: {name} must be a probability in [0, 1), "
                                 f"got {p!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise ValueError(f"MobileBertConfig: {name} must be a positive finite number, "
                                 f"got {v!r}")
        if self.architectures is not None and not (
                isinstance(self.architectures, list)
                and all(isinstance(a, str) for a in self.architectures)):
            raise TypeError(f"MobileBertConfig: architectures must be a list of class names, "
                            f"got {self.architectures!r}")
        for name in ("hidden_act", "normalization_type", "model_type"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"MobileBertConfig: {name} must be a string, "
                                f"got {getattr(self, name)!r}")
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"MobileBertConfig: unknown model_type {self.model_type!r}; "
                             f"known: {', '.join(MODEL_TYPES)}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"MobileBertConfig: unknown hidden_act {self.hidden_act!r}; "
                             f"known: {', '.join(ACTIVATIONS)}")
        if self.normalization_type not in NORMALIZATIONS:
            raise ValueError(f"MobileBertConfig: unknown normalization_type "
                             f"{self.normalization_type!r}; known: {', '.join(NORMALIZATIONS)}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"MobileBertConfig: unknown problem_type {self.problem_type!r}; "
                             f"known: {', '.join(PROBLEM_TYPES)}")
        if self.pad_token_id is not None and not (
                isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"MobileBertConfig: pad_token_id {self.pad_token_id!r} is outside "
                             f"the vocabulary [0, {self.vocab_size})")
        if self.true_hidden_size % self.num_attention_heads:
            width = "intra_bottleneck_size" if self.use_bottleneck else "hidden_size"
            raise ValueError(f"MobileBertConfig: {width} {self.true_hidden_size} (the attention "
                             f"width) is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.embedding_size > self.hidden_size:
            raise ValueError(f"MobileBertConfig: embedding_size {self.embedding_size} is larger "
                             f"than hidden_size {self.hidden_size}; the MLM head needs "
                             f"hidden_size - embedding_size >= 0 extra output features")
        if not self.tie_word_embeddings:
            raise ValueError("MobileBertConfig: tie_word_embeddings=false is not supported; the "
                             "MLM decoder always shares the word-embedding table")
        if self.attention_mask_value is not None and (
                isinstance(self.attention_mask_value, bool)
                or not isinstance(self.attention_mask_value, (int, float))
                or not math.isfinite(self.attention_mask_value)):
            raise ValueError(f"MobileBertConfig: attention_mask_value must be null (HF's "
                             f"additive large negative mask) or a finite number such as -6.0, "
                             f"got {self.attention_mask_value!r}")
        if self.id2label is not None and len(self.id2label) != self.num_labels:
            raise ValueError(f"MobileBertConfig: id2label has {len(self.id2label)} labels but "
                             f"num_labels is {self.num_labels}")
        if self.model_type == "bert":
            odd = [f"{k}={getattr(self, k)!r}" for k, want in _BERT_SHAPE.items()
                   if getattr(self, k) != want]
            if self.embedding_size != self.hidden_size:
                odd.append(f"embedding_size={self.embedding_size} != hidden_size="
                           f"{self.hidden_size}")
            if odd:
                raise ValueError("MobileBertConfig: a BERT config (model_type 'bert') cannot "
                                 "have " + ", ".join(odd) + "; MobileBertConfig.bert(...) "
                                 "starts from BERT's defaults")

    # --- conversion ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """HF-style dict: every field, `true_hidden_size`, labels as HF writes them."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(out.pop("extra"))
        out["true_hidden_size"] = self.true_hidden_size
        out["id2label"] = {str(i): name for i, name in enumerate(self.label_names)}
        out["label2id"] = {name: i for i, name in enumerate(self.label_names)}
        if out["architectures"] is None:
            del out["architectures"]
        if self.model_type == "bert":
            for k in _MOBILE_ONLY:
                out.pop(k, None)
        return out

    @classmethod
    def _check_overrides(cls, overrides: dict[str, Any]) -> set[str]:
        """The field names; a typo among the overrides is a TypeError (a caller's bug)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"MobileBertConfig: unknown config field(s) {', '.join(unknown)}")
        return names

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> MobileBertConfig:
        """Build from an HF-style dict. HF's bookkeeping keys are dropped; other unknown keys
        are kept in `extra` and written back by `to_dict` (as transformers does). `overrides`
        must be field names (a typo raises TypeError)."""
        if not isinstance(data, dict):
            raise TypeError(f"MobileBertConfig.from_dict: expected a dict, "
                            f"got {type(data).__name__}")
        names = cls._check_overrides(overrides)
        data = {**data, **overrides}
        is_bert = data.get("model_type", "mobilebert") == "bert"
        kwargs: dict[str, Any] = dict(_BERT_DEFAULTS) if is_bert else {}
        extra = {}
        for key, value in data.items():
            if key in names:
                kwargs[key] = value
            elif key not in _IGNORED_KEYS and key != "label2id":
                extra[key] = value
        if is_bert and "embedding_size" not in data:
            kwargs["embedding_size"] = kwargs["hidden_size"]
        id2label = kwargs.get("id2label")
        if id2label is not None:
            if not isinstance(id2label, dict):
                raise TypeError(f"MobileBertConfig: id2label must be a dict, got {id2label!r}")
            try:
                id2label = {int(k): str(v) for k, v in id2label.items()}
            except ValueError as e:
                raise ValueError(f"MobileBertConfig: id2label keys must be integers: {e}") from e
            kwargs.setdefault("num_labels", len(id2label))
            default = all(v == f"LABEL_{k}" for k, v in id2label.items())
            kwargs["id2label"] = None if default else id2label
        config = cls(**kwargs, extra=extra)
        given = data.get("true_hidden_size")
        if given is not None and given != config.true_hidden_size:
            raise ValueError(
                f"MobileBertConfig: true_hidden_size {given} does not match "
                f"{'intra_bottleneck_size' if config.use_bottleneck else 'hidden_size'} "
                f"{config.true_hidden_size} (use_bottleneck={config.use_bottleneck})")
        return config

    @classmethod
    def bert(cls, **fields: Any) -> MobileBertConfig:
        """A BERT config (model_type "bert"): HF BertConfig's defaults (bert-base) changed by
        `fields`; embedding_size follows hidden_size."""
        return cls.from_dict({"model_type": "bert", **fields})

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as indented JSON text; also written (atomically) to `path` if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            from autograd.serialization import atomic_open
            with atomic_open(path, "w") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, path: str | Path, **overrides: Any) -> MobileBertConfig:
        """Read a config.json: strict UTF-8 JSON (no duplicate keys, no NaN/Infinity), every
        value checked; a problem with the file raises CheckpointError naming it."""
        path = Path(path)
        cls._check_overrides(overrides)
        data = load_json(path, "config file")
        try:
            return cls.from_dict(data, **overrides)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"config file {path}: {e}") from None

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides: Any) -> MobileBertConfig:
        """A preset by name, a model directory holding config.json, or a .json file."""
        if isinstance(name_or_path, str) and name_or_path in PRESETS:
            return cls.from_dict(PRESETS[name_or_path], **overrides)
        path = Path(name_or_path)
        if path.is_dir():
            return cls.from_json(path / CONFIG_NAME, **overrides)
        if path.is_file():
            return cls.from_json(path, **overrides)
        raise ValueError(f"MobileBertConfig.from_pretrained: {str(name_or_path)!r} is neither a "
                         f"preset ({', '.join(PRESETS)}) nor a directory or config file")

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `directory`/config.json (creating the directory)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_json(directory / CONFIG_NAME)
        return directory / CONFIG_NAME

    def replace(self, **changes: Any) -> MobileBertConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# Fields BERT does not have (dropped from a BERT config.json) and the values BertModel implies.
_MOBILE_ONLY = ("embedding_size", "trigram_input", "use_bottleneck", "intra_bottleneck_size",
                "use_bottleneck_attention", "key_query_shared_bottleneck",
                "num_feedforward_networks", "normalization_type", "classifier_activation",
                "true_hidden_size")
_BERT_SHAPE = {"trigram_input": False, "use_bottleneck": False, "num_feedforward_networks": 1,
               "normalization_type": "layer_norm", "classifier_activation": True}


_BERT_DEFAULTS = {
    **_BERT_SHAPE, "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "key_query_shared_bottleneck": False, "model_type": "bert",
}

_MOBILEBERT = {
    "model_type": "mobilebert", "vocab_size": 30522, "embedding_size": 128, "hidden_size": 512,
    "num_hidden_layers": 24, "num_attention_heads": 4, "intermediate_size": 512,
    "hidden_act": "relu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
    "layer_norm_eps": 1e-12, "pad_token_id": 0, "trigram_input": True, "use_bottleneck": True,
    "intra_bottleneck_size": 128, "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": True, "num_feedforward_networks": 4,
    "normalization_type": "no_norm", "classifier_activation": False,
}
_IB_BERT_LARGE = {
    **_MOBILEBERT, "intra_bottleneck_size": 1024, "intermediate_size": 4096,
    "num_feedforward_networks": 1, "key_query_shared_bottleneck": False,
    "hidden_act": "gelu_new", "normalization_type": "layer_norm", "classifier_activation": True,
    "hidden_dropout_prob": 0.1,
}
_SMALL = {"embedding_size": 128, "hidden_size": 256, "num_hidden_layers": 4,
          "num_attention_heads": 4}

PRESETS: dict[str, dict[str, Any]] = {
    "mobilebert": _MOBILEBERT,
    "mobilebert-tiny": {**_MOBILEBERT, "use_bottleneck_attention": True,
                        "key_query_shared_bottleneck": False, "num_feedforward_networks": 2},
    "mobilebert-4l": {**_MOBILEBERT, "num_hidden_layers": 4},
    "ib-bert-large": _IB_BERT_LARGE,
    "bert-base": {"model_type": "bert"},
    "bert-large": {"model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24,
                   "num_attention_heads": 16, "intermediate_size": 4096},
    # A teacher/student pair for a 2-core machine: identical embeddings (so the student can be
    # initialised from the teacher) and inter-block width, heads and depth (layer-wise transfer).
    "ib-bert-small": {**_IB_BERT_LARGE, **_SMALL, "intra_bottleneck_size": 512,
                      "intermediate_size": 1024},
    "mobilebert-small": {**_MOBILEBERT, **_SMALL, "intra_bottleneck_size": 64,
                         "intermediate_size": 256},
}
for _name in ("bert-base", "bert-large"):
    PRESETS[_name] = {**_BERT_DEFAULTS, **PRESETS[_name]}
    PRESETS[_name]["embedding_size"] = PRESETS[_name]["hidden_size"]
