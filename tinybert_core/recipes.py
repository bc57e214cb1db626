"""End-to-end recipes behind the CLI: pre-train a model, distill a teacher into a student,
evaluate a model's masked-LM loss, train a vocabulary.

Each recipe checks everything it can before the first step (files, corpus, vocabulary against
the embedding table, the teacher against the student, sequence length against the position
table), then builds data and models and hands them to `tinybert_core.training.loop.train`.

Under data parallelism (`data_parallel`, one process of an `mpiexec` job) rank 0 opens the run
directory and prepares the shared files first (a vocabulary trained on the corpus, the token
cache), the others then read them; each process draws its slice of every global batch.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from autograd.distributed import DataParallel
from tinybert_core.config import PRESETS, MobileBertConfig
from tinybert_core.data.pretraining import make_eval_batches, make_pretraining_batches
from tinybert_core.models.auto import load_model, model_class
from tinybert_core.distillation.strategies import KTOptions, check_compatible, copy_from_teacher
from tinybert_core.text.tokenization import BertTokenizer
from tinybert_core.data.corpus import tokenize_corpus
from tinybert_core.evaluation.baselines import UNIGRAM_FILE, UnigramBaseline, unigram_baseline
from tinybert_core.evaluation.mlm import evaluate_mlm
from tinybert_core.training.loop import TrainingArguments, train
from tinybert_core.training.run_dir import open_job_directory

DEFAULT_VOCAB_SIZE = 8000


@dataclass
class DataOptions:
    """Where text comes from and how it is cut into MLM + NSP examples."""

    corpus: Sequence[Path] | None = None       # None: the embedded default corpus
    eval_corpus: Sequence[Path] | None = None  # None: default corpus's validation split, if used
    vocab: Path | None = None                  # None: teacher's, else trained on the corpus
    batch_size: int = 8
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    mlm_probability: float = 0.15              # share of tokens masked (BERT's masked_lm_prob)
    whole_word_mask: bool = False
    eval_batches: int = 20
    cache_dir: Path | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_tokenizer(data: DataOptions, output_dir: Path | None, teacher_dir: Path | None = None
                      ) -> BertTokenizer:
    """The vocabulary, in order of preference: --vocab, the teacher's, the default corpus's
    cached one, or a new one trained on the user's corpus and saved in `output_dir` (a run
    directory the caller holds; None when the caller writes nothing, such as evaluate)."""
    if data.vocab is not None:
        return BertTokenizer(data.vocab)
    if teacher_dir is not None and (Path(teacher_dir) / "vocab.txt").is_file():
        return BertTokenizer.from_pretrained(teacher_dir)
    if output_dir is None:
        where = f"{teacher_dir} has no vocab.txt" if teacher_dir else "no vocabulary given"
        raise ValueError(f"{where}; pass the vocabulary the model was trained with "
                         f"(--vocab FILE)")
    if data.corpus is None:
        from tinybert_core.data.default_corpus import default_vocab_path
        return BertTokenizer(default_vocab_path(cache_dir=data.cache_dir))
    from tinybert_core.data.corpus import check_corpus
    from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab
    files = check_corpus(data.corpus)
    path = Path(output_dir) / "vocab.txt"
    if not path.is_file():
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        save_vocab(train_wordpiece_vocab(files, DEFAULT_VOCAB_SIZE), path)
    return BertTokenizer(path)


def resolve_config(name_or_dir: str | Path, tokenizer: BertTokenizer, max_seq_length: int,
                   **overrides: Any) -> MobileBertConfig:
    """A preset or config directory, with vocab_size set to the tokenizer's."""
    config = MobileBertConfig.from_pretrained(name_or_dir, **overrides)
    if config.vocab_size != len(tokenizer):
        config = config.replace(vocab_size=len(tokenizer))
    if max_seq_length > config.max_position_embeddings:
        raise ValueError(f"max_seq_length {max_seq_length} exceeds the model's "
                         f"max_position_embeddings {config.max_position_embeddings}")
    return config


def _data(data: DataOptions, tokenizer: BertTokenizer, dp: DataParallel | None = None
          ) -> tuple[Any, list[Any] | None, UnigramBaseline]:
    """Training batches (this process's shard), held-out batches (None without held-out text,
    and on every rank but 0) and the training corpus's unigram baseline."""
    kw = dict(tokenizer=tokenizer, max_seq_length=data.max_seq_length,
              max_predictions_per_seq=data.max_predictions_per_seq,
              masked_lm_prob=data.mlm_probability, whole_word_mask=data.whole_word_mask,
              cache_dir=data.cache_dir)
    shard = (0, 1) if dp is None else (dp.rank, dp.size)
    batches = make_pretraining_batches(data.corpus, batch_size=data.batch_size, seed=data.seed,
                                       shard=shard, **kw)
    baseline = unigram_baseline(batches.dataset.corpus)
    eval_paths = data.eval_corpus
    if (eval_paths is None and data.corpus is not None) or shard[0] != 0:
        return batches, None, baseline            # no held-out text named, or not rank 0
    ev = make_eval_batches(eval_paths, batch_size=data.batch_size,
                           max_batches=data.eval_batches, **kw)
    return batches, ev, baseline


def name_tokens(result: dict[str, Any], tokenizer: BertTokenizer) -> dict[str, Any]:
    """`result` (an `evaluate_mlm` dict) with the token strings of its two argmax ids added:
    `top_prediction_token`, and `unigram_top_token` when a baseline was scored."""
    if not result:
        return result
    out = dict(result)
    out["top_prediction_token"] = tokenizer.convert_ids_to_tokens(result["top_prediction"])
    if "unigram_top_id" in result:
        out["unigram_top_token"] = tokenizer.convert_ids_to_tokens(result["unigram_top_id"])
    return out


def _main_first(dp: DataParallel | None) -> Any:
    return nullcontext() if dp is None else dp.main_first()


def _inputs(data: DataOptions, *more: Any) -> list[Any]:
    """Every file and directory a run reads, for `open_run_directory`'s input check."""
    return [*(data.corpus or ()), *(data.eval_corpus or ()), data.vocab, *more]


def _counted(batches: list[Any], on_batch: Callable[[int, int], None]) -> Iterator[Any]:
    for i, batch in enumerate(batches, start=1):
        yield batch
        on_batch(i, len(batches))


def pretrain(config: str | Path, output_dir: Path, data: DataOptions, args: dict[str, Any],
             on_step: Callable[[dict], None] | None = None, resume: bool = False,
             seed: int = 0, overwrite: bool = False,
             data_parallel: DataParallel | None = None) -> dict[str, Any]:
    """Train any config (a teacher, or the no-teacher student baseline) with MLM + NSP.

    The output directory is locked and checked first (`open_run_directory`: empty, or
    `resume`, or `overwrite`), before a vocabulary is trained into it.
    """
    output_dir = Path(output_dir)
    config_dir = config if not (isinstance(config, str) and config in PRESETS) else None
    with open_job_directory(output_dir, data_parallel, resume=resume, overwrite=overwrite,
                            inputs=_inputs(data, config_dir)) as run_dir:
        with _main_first(data_parallel):
            tokenizer = resolve_tokenizer(data, output_dir)
            cfg = resolve_config(config, tokenizer, data.max_seq_length)
            batches, ev, baseline = _data(data, tokenizer, data_parallel)
        model = model_class(cfg, "pretraining")(cfg, seed=seed)
        targs = TrainingArguments(output_dir=output_dir, strategy="none", **args)
        summary = train(model, targs, batches, eval_batches=ev, tokenizer=tokenizer,
                        on_step=on_step, resume=resume, run_dir=run_dir, baseline=baseline,
                        data_parallel=data_parallel)
    return {**summary, "eval": name_tokens(summary["eval"], tokenizer)}


def distill(teacher_dir: Path, student_config: str | Path, output_dir: Path, strategy: str,
            data: DataOptions, args: dict[str, Any], kt: KTOptions | None = None,
            on_step: Callable[[dict], None] | None = None, resume: bool = False,
            seed: int = 0, init_from_teacher: bool | None = None,
            overwrite: bool = False, data_parallel: DataParallel | None = None
            ) -> dict[str, Any]:
    """Transfer a pre-trained teacher into a student with `strategy` (spec section 5).

    `init_from_teacher` copies the teacher's embeddings and heads into the student first
    (Google's init_from_teacher); None means "for every strategy but none". Strategy none with
    init_from_teacher=True is the control that separates the copy from the transfer losses.
    The output directory is checked and locked as in `pretrain`; it may not be the teacher's.
    """
    output_dir = Path(output_dir)
    teacher_config = MobileBertConfig.from_pretrained(Path(teacher_dir))
    config_dir = student_config if not (isinstance(student_config, str)
                                        and student_config in PRESETS) else None
    with open_job_directory(output_dir, data_parallel, resume=resume, overwrite=overwrite,
                            inputs=_inputs(data, teacher_dir, config_dir)) as run_dir:
        with _main_first(data_parallel):
            tokenizer = resolve_tokenizer(data, output_dir, teacher_dir)
            if len(tokenizer) != teacher_config.vocab_size:
                raise ValueError(f"the vocabulary has {len(tokenizer)} tokens but the "
                                 f"teacher's embedding table has {teacher_config.vocab_size} "
                                 f"rows")
            cfg = resolve_config(student_config, tokenizer, data.max_seq_length)
            check_compatible(cfg, teacher_config, strategy)
            batches, ev, baseline = _data(data, tokenizer, data_parallel)
        teacher = load_model(teacher_dir, "pretraining")
        student = model_class(cfg, "pretraining")(cfg, seed=seed)
        if init_from_teacher is None:
            init_from_teacher = strategy != "none"
        if init_from_teacher:
            copy_from_teacher(student, teacher)
        targs = TrainingArguments(output_dir=output_dir, strategy=strategy,
                                  kt=kt or KTOptions(), **args)
        summary = train(student, targs, batches,
                        teacher=teacher if strategy != "none" else None, eval_batches=ev,
                        tokenizer=tokenizer, on_step=on_step, resume=resume, run_dir=run_dir,
                        baseline=baseline, data_parallel=data_parallel)
    return {**summary, "eval": name_tokens(summary["eval"], tokenizer)}


def training_baseline(model_dir: Path, data: DataOptions, tokenizer: BertTokenizer
                      ) -> tuple[UnigramBaseline | None, str | None]:
    """The unigram baseline of the text `model_dir` was trained on, and where it came from:
    the training text named by `data.corpus`; else the counts saved with the model by
    `pretrain` / `distill`; else, when evaluating on the embedded corpus, its training split;
    else (None, None): the training text is unknown."""
    if data.corpus is not None:
        corpus = tokenize_corpus(data.corpus, tokenizer, cache_dir=data.cache_dir)
        return unigram_baseline(corpus), "--corpus " + " ".join(map(str, data.corpus))
    saved = Path(model_dir) / UNIGRAM_FILE
    if saved.is_file():
        return UnigramBaseline.load(saved), str(saved)
    if data.eval_corpus is None:
        from tinybert_core.data.default_corpus import build_default_corpus
        train_file = build_default_corpus(cache_dir=data.cache_dir).train
        corpus = tokenize_corpus([train_file], tokenizer, cache_dir=data.cache_dir)
        return unigram_baseline(corpus), "the embedded corpus's training split"
    return None, None


def evaluate(model_dir: Path, data: DataOptions,
             on_batch: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Held-out masked-LM loss and accuracy of a saved pre-training model, next to the unigram
    baseline of its training text (`training_baseline`) on the same masked positions.

    Evaluates on `data.eval_corpus`, else `data.corpus`, else the embedded corpus's held-out
    split. `on_batch(done, total)` is called after each evaluation batch (progress).
    """
    model = load_model(model_dir, "pretraining")
    tokenizer = resolve_tokenizer(data, None, Path(model_dir))   # never writes into MODEL_DIR
    if len(tokenizer) != model.config.vocab_size:
        raise ValueError(f"the vocabulary has {len(tokenizer)} tokens but the model's "
                         f"embedding table has {model.config.vocab_size} rows")
    paths = data.eval_corpus if data.eval_corpus is not None else data.corpus
    ev = make_eval_batches(paths, tokenizer=tokenizer, batch_size=data.batch_size,
                           max_seq_length=data.max_seq_length,
                           max_predictions_per_seq=data.max_predictions_per_seq,
                           masked_lm_prob=data.mlm_probability,
                           whole_word_mask=data.whole_word_mask, max_batches=data.eval_batches,
                           cache_dir=data.cache_dir)
    baseline, source = training_baseline(model_dir, data, tokenizer)
    result = evaluate_mlm(model, ev if on_batch is None else _counted(ev, on_batch), baseline)
    result["perplexity"] = float(np.exp(result["mlm_loss"]))
    result["unigram_source"] = source
    return name_tokens(result, tokenizer)
