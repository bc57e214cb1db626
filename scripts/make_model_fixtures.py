"""Generate tests/fixtures/models/: tiny random Hugging Face models and their reference outputs.

For each configuration below, transformers builds a random-weight `*ForPreTraining` model (every
parameter, norms and biases included, redrawn from a seeded generator so nothing is a trivial 1
or 0), saves it with `save_pretrained` (config.json + model.safetensors) together with a
1,000-token WordPiece vocabulary cut from the BERT uncased vocab, and records into
`reference.npz`, for fixed inputs with and without a padding attention mask:
backbone last_hidden_state / pooler_output / hidden_states / attentions, pre-training
prediction_logits / seq_relationship_logits / loss, and the logits and losses of freshly
initialised sequence-classification (3 labels), token-classification (5 labels) and QA heads
(whose weights are stored too, under "head.<name>"), plus masked-LM logits for one tokenized
sentence (for the fill-mask CLI test).

Configurations: MobileBERT-like (key_query_shared_bottleneck, 4 stacked FFNs, no pooler),
TINY-like (use_bottleneck_attention, 2 FFNs, tanh pooler), MobileBERT "w/o OPT" (layer_norm +
tanh GELU, which also exercises HF's eps quirks), and a BERT.

Usage (needs torch + transformers; tinybert itself never imports them):
    /work/refvenv/bin/python scripts/make_model_fixtures.py [--out tests/fixtures/models]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "models"
BERT_VOCAB = ROOT.parent / "shared" / "data" / "vocab" / "bert-base-uncased-vocab.txt"
VOCAB_SIZE = 1000
SENTENCE = "the man went to the [MASK] and bought a gallon of milk ."

_SMALL = dict(vocab_size=VOCAB_SIZE, embedding_size=32, hidden_size=64, intra_bottleneck_size=32,
              num_attention_heads=4, intermediate_size=64, num_hidden_layers=2,
              max_position_embeddings=64, hidden_dropout_prob=0.0,
              attention_probs_dropout_prob=0.1)
CONFIGS = {
    "mobilebert-kq-shared": ("mobilebert", dict(
        _SMALL, key_query_shared_bottleneck=True, use_bottleneck_attention=False,
        num_feedforward_networks=4, hidden_act="relu", normalization_type="no_norm",
        classifier_activation=False)),
    "mobilebert-tiny-like": ("mobilebert", dict(
        _SMALL, key_query_shared_bottleneck=False, use_bottleneck_attention=True,
        num_feedforward_networks=2, hidden_act="relu", normalization_type="no_norm",
        classifier_activation=True)),
    "mobilebert-no-opt": ("mobilebert", dict(
        _SMALL, key_query_shared_bottleneck=True, use_bottleneck_attention=False,
        num_feedforward_networks=2, hidden_act="gelu_new", normalization_type="layer_norm",
        classifier_activation=True, hidden_dropout_prob=0.1)),
    "bert": ("bert", dict(
        vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64, hidden_act="gelu")),
}


def small_vocab() -> list[str]:
    """[PAD] [UNK] [CLS] [SEP] [MASK], ASCII single characters, ##a-##z, the sentence's words,
    then the most frequent whole words of the BERT vocabulary, 1,000 tokens in all."""
    full = BERT_VOCAB.read_text(encoding="utf-8").splitlines()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [t for t in full[999:1996] if len(t) == 1 and t.isascii()]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    words = [w for w in SENTENCE.split() if w.isalpha()] + ["store", "shop", "market"]
    for w in words + [t for t in full[1996:] if t.isalpha() and t.isascii()]:
        if len(vocab) == VOCAB_SIZE:
            break
        if w not in vocab:
            vocab.append(w)
    return vocab


def inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    B, T = 2, 12
    ids = rng.integers(5, VOCAB_SIZE, (B, T))
    ids[:, 0], ids[:, -1] = 2, 3                      # [CLS] ... [SEP]
    types = np.zeros((B, T), np.int64)
    types[:, T // 2:] = 1
    padded = ids.copy()
    padded[1, -4:] = 0                                # [PAD] x 4 in row 1
    padded[1, -5] = 3
    mask = np.ones((B, T), np.int64)
    mask[1, -4:] = 0
    labels = np.full((B, T), -100)
    labels[0, 3], labels[1, 5], labels[0, 7] = ids[0, 3], ids[1, 5], 11
    return {"input_ids": ids, "token_type_ids": types, "padded_input_ids": padded,
            "attention_mask": mask, "mlm_labels": labels, "nsp_labels": np.array([0, 1]),
            "cls_labels": np.array([2, 0]), "token_labels": rng.integers(0, 5, (B, T)),
            "start_positions": np.array([3, 40]), "end_positions": np.array([5, 2])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    try:
        import torch
        import transformers as tf
    except ImportError as e:  # pragma: no cover - depends on the environment
        sys.exit(f"make_model_fixtures.py needs torch and transformers ({e}); run it with the "
                 f"reference environment, e.g. /work/refvenv/bin/python")
    tf.logging.set_verbosity_error()
    torch.manual_seed(0)
    vocab = small_vocab()
    rng = np.random.default_rng(1234)
    data = inputs(rng)
    for index, (name, (family, kwargs)) in enumerate(CONFIGS.items()):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
        cfg_cls = tf.MobileBertConfig if family == "mobilebert" else tf.BertConfig
        prefix = "MobileBert" if family == "mobilebert" else "Bert"
        config = cfg_cls(**kwargs, attn_implementation="eager")
        model = getattr(tf, prefix + "ForPreTraining")(config).eval()
        gen = torch.Generator().manual_seed(100 + index)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                noise = torch.randn(p.shape, generator=gen) * 0.1
                is_gamma = pname.endswith("LayerNorm.weight")
                p.copy_(1.0 + noise if is_gamma else noise)
        model.save_pretrained(out)
        ref: dict[str, np.ndarray] = {k: v for k, v in data.items()}
        heads = {
            "ForSequenceClassification": dict(num_labels=3),
            "ForTokenClassification": dict(num_labels=5),
            "ForQuestionAnswering": dict(),
        }
        tasks = {}
        for head, extra in heads.items():
            task = getattr(tf, prefix + head).from_pretrained(out, **extra,
                                                              attn_implementation="eager")
            with torch.no_grad():
                for pname, p in task.named_parameters():
                    if pname.startswith(("classifier", "qa_outputs")):
                        p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
                        ref[f"head.{head}.{pname}"] = p.numpy().copy()
            tasks[head] = task.eval()
        for case, ids, mask in (("nomask", data["input_ids"], None),
                                ("mask", data["padded_input_ids"], data["attention_mask"])):
            def t(a):
                return None if a is None else torch.tensor(a)
            kw = dict(input_ids=t(ids), attention_mask=t(mask),
                      token_type_ids=t(data["token_type_ids"]))
            with torch.no_grad():
                base = getattr(model, family)(**kw, output_hidden_states=True,
                                              output_attentions=True)
                pre = model(**kw, labels=t(data["mlm_labels"]),
                            next_sentence_label=t(data["nsp_labels"]))
                seq = tasks["ForSequenceClassification"](**kw, labels=t(data["cls_labels"]))
                tokens = tasks["ForTokenClassification"](**kw, labels=t(data["token_labels"]))
                qa = tasks["ForQuestionAnswering"](**kw, start_positions=t(data["start_positions"]),
                                                   end_positions=t(data["end_positions"]))
            results = {
                "last_hidden_state": base.last_hidden_state,
                "pooler_output": base.pooler_output,
                "hidden_states": torch.stack(base.hidden_states),
                "attentions": torch.stack(base.attentions),
                "prediction_logits": pre.prediction_logits,
                "seq_relationship_logits": pre.seq_relationship_logits,
                "pretraining_loss": pre.loss,
                "ForSequenceClassification.logits": seq.logits,
                "ForSequenceClassification.loss": seq.loss,
                "ForTokenClassification.logits": tokens.logits,
                "ForTokenClassification.loss": tokens.loss,
                "ForQuestionAnswering.start_logits": qa.start_logits,
                "ForQuestionAnswering.end_logits": qa.end_logits,
                "ForQuestionAnswering.loss": qa.loss,
            }
            for key, value in results.items():
                ref[f"{case}.{key}"] = value.numpy()
        tok = tf.BertTokenizer(str(out / "vocab.txt"))
        enc = tok(SENTENCE, return_tensors="pt")
        with torch.no_grad():
            mlm = getattr(tf, prefix + "ForMaskedLM").from_pretrained(out).eval()
            logits = mlm(**enc).logits[0]
        ref["sentence.input_ids"] = enc["input_ids"].numpy()
        ref["sentence.logits"] = logits.numpy()
        np.savez(out / "reference.npz", **ref)
        meta = {"transformers": tf.__version__, "torch": torch.__version__, "sentence": SENTENCE,
                "family": family}
        (out / "reference.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters -> {out}")


if __name__ == "__main__":
    main()
