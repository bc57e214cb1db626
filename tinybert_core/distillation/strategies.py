"""Training strategies as lists of stages (paper section 4.3, spec section 5).

A `Stage` is a number of steps, a loss over (student, teacher, batch), learning-rate scales by
parameter-name pattern and a learning-rate schedule; a strategy is the list of its stages:

- `none` (the baseline, also teacher pre-training): MLM + NSP, no teacher.
- `auxiliary_knowledge_transfer`: one stage, all layers' FMT + AT plus PD, jointly.
- `joint_knowledge_transfer`: all layers' FMT + AT at once, then PD.
- `progressive_knowledge_transfer`: one stage per layer l training block l on its FMT + AT,
  with the embeddings and heads (copied from the teacher) frozen and the lower blocks frozen or,
  as in Google's code, trained at a reduced learning rate; then PD over the whole model.

Every strategy is given the same total number of steps (L x kt_steps_per_layer + pd_steps), as
the paper does for its ablations, so their held-out MLM numbers compare like for like.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


from autograd import Tensor, no_grad, optim
from tinybert_core.distillation import losses as L
from tinybert_core.models.heads import count_items, masked_lm_loss, next_sentence_loss

STRATEGIES = ("none", "auxiliary", "joint", "progressive")
ENCODER = r"\.encoder\.layer\."


@dataclass
class KTOptions:
    """Knobs of the knowledge-transfer losses and schedules (defaults: the paper's forms)."""

    alpha: float = 0.5                 # PD: weight of the ground-truth MLM term
    temperature: float = 1.0           # PD: KD temperature
    google_kt: bool = False            # Google's normalised FMT x100 + AT + 5000 beta + 5 gamma
    progressive_lower_lr: float = 0.0  # lower blocks during PKT: 0 = frozen, Google: 0.1
    progressive_active_lr: float = 1.0  # the active block's multiplier (Google: 3.0)
    student_dropout: bool = False      # Google turns student dropout off while distilling

    def kt_factors(self, num_layers: int) -> dict[str, Any]:
        if self.google_kt:
            return {"fmt_factor": 100.0, "at_factor": 1.0, "beta_factor": 5000.0,
                    "gamma_factor": 5.0, "normalize_fmt": True, "scale": 1.0 / num_layers}
        return {"fmt_factor": 1.0, "at_factor": 1.0}


# (student, teacher, batch, num_items=None) -> loss terms, the total under "loss". num_items:
# the masked-token count the MLM and KD means divide by (`masked_lm_loss`); the training loop
# passes the global batch's average so that gradient accumulation and data parallelism average
# over tokens, not over micro-batches.
LossFn = Callable[..., dict[str, Tensor]]


def masked_tokens(batch: Any) -> int:
    """What the MLM and KD means of a pre-training batch average over: its masked tokens."""
    return count_items(batch.masked_lm_labels())


@dataclass
class Stage:
    name: str
    steps: int
    loss: LossFn
    needs_teacher: bool
    lr_scales: list[tuple[str | None, float]] = field(default_factory=list)
    warmup_proportion: float = 0.0
    decay: bool = True
    train_mode: bool = True            # dropout on in the student during this stage
    # What `loss`'s means average over in one batch (pre-training: masked tokens; fine-tuning:
    # examples). The loop sums it over the global batch and passes `loss` num_items; None: the
    # loss is called without it, and its mean is taken as it comes (exact only when every
    # micro-batch and process averages over as many items).
    items: Callable[[Any], int] | None = None


def _inputs(batch: Any) -> dict[str, Any]:
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids}


def pretraining_loss(student: Any, teacher: Any, batch: Any,
                     num_items: float | None = None) -> dict[str, Tensor]:
    """MLM at the masked positions + NSP: the baseline and the teacher's objective."""
    out = student(**_inputs(batch), masked_positions=batch.masked_lm_positions)
    mlm = masked_lm_loss(out.prediction_logits, batch.masked_lm_labels(), num_items=num_items)
    nsp = next_sentence_loss(out.seq_relationship_logits, batch.next_sentence_labels)
    return {"loss": mlm + nsp, "mlm": mlm, "nsp": nsp}


def _teacher_outputs(teacher: Any, batch: Any, heads: bool, features: bool) -> Any:
    with no_grad():
        if heads:
            return teacher(**_inputs(batch), masked_positions=batch.masked_lm_positions,
                           output_hidden_states=features, output_attentions=features)
        return teacher.base_model(**_inputs(batch), output_hidden_states=True,
                                  output_attentions=True)


def knowledge_transfer_loss(layers: list[int], opts: KTOptions, num_layers: int) -> LossFn:
    """FMT + AT summed over `layers` (1-based block indices). Both are means over tensors of
    the same shape in every process (padded to the global batch's width), so `num_items` has
    nothing to rescale."""
    factors = opts.kt_factors(num_layers)

    def loss(student: Any, teacher: Any, batch: Any,
             num_items: float | None = None) -> dict[str, Tensor]:
        t_out = _teacher_outputs(teacher, batch, heads=False, features=True)
        s_out = student.base_model(**_inputs(batch), output_hidden_states=True,
                                   output_attentions=True)
        return L.layer_wise_transfer_loss(s_out, t_out, layers, **factors)
    return loss


def distillation_loss(opts: KTOptions, kt_layers: list[int] | None = None,
                      num_layers: int = 0) -> LossFn:
    """Pre-training distillation (alpha MLM + (1 - alpha) KD + NSP), plus all layers' KT losses
    when `kt_layers` is given (the auxiliary strategy's single objective)."""
    factors = opts.kt_factors(num_layers) if kt_layers else {}

    def loss(student: Any, teacher: Any, batch: Any,
             num_items: float | None = None) -> dict[str, Tensor]:
        features = bool(kt_layers)
        t_out = _teacher_outputs(teacher, batch, heads=True, features=features)
        s_out = student(**_inputs(batch), masked_positions=batch.masked_lm_positions,
                        output_hidden_states=features, output_attentions=features)
        out = L.pretraining_distillation_loss(
            s_out.prediction_logits, t_out.prediction_logits, batch.masked_lm_labels(),
            s_out.seq_relationship_logits, batch.next_sentence_labels, opts.alpha,
            opts.temperature, num_items)
        if kt_layers:
            kt = L.layer_wise_transfer_loss(s_out, t_out, kt_layers, **factors)
            for k, v in kt.items():
                if k != "loss":
                    out[k] = v
            out["loss"] = out["loss"] + kt["loss"]
        return out
    return loss


def _frozen_outside_encoder() -> list[tuple[str | None, float]]:
    """Embeddings and heads come from the teacher and stay put during layer-wise transfer."""
    return [(None, 0.0), (ENCODER, 1.0)]


def build_stages(strategy: str, num_layers: int, kt_steps_per_layer: int, pd_steps: int,
                 opts: KTOptions, warmup_proportion: float = 0.1) -> list[Stage]:
    """The stages of `strategy` for a student with `num_layers` blocks."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if kt_steps_per_layer < 0 or pd_steps < 0:
        raise ValueError("step counts must be non-negative")
    kt_steps = num_layers * kt_steps_per_layer
    every = list(range(1, num_layers + 1))
    dropout_on = opts.student_dropout  # Google: off while distilling
    if strategy == "none":
        return [Stage("pretrain", kt_steps + pd_steps, pretraining_loss, False,
                      warmup_proportion=warmup_proportion, items=masked_tokens)]
    pd = Stage("pd", pd_steps, distillation_loss(opts), True,
               warmup_proportion=warmup_proportion, train_mode=dropout_on, items=masked_tokens)
    if strategy == "auxiliary":
        return [Stage("auxiliary", kt_steps + pd_steps,
                      distillation_loss(opts, every, num_layers), True,
                      warmup_proportion=warmup_proportion, train_mode=dropout_on,
                      items=masked_tokens)]
    if strategy == "joint":
        return [Stage("joint-kt", kt_steps, knowledge_transfer_loss(every, opts, num_layers), True,
                      _frozen_outside_encoder(), warmup_proportion=warmup_proportion,
                      train_mode=dropout_on, items=masked_tokens), pd]
    stages = []
    for layer in every:
        scales = [(None, 0.0)]
        if opts.progressive_lower_lr and layer > 1:
            scales.append((rf"{ENCODER}({'|'.join(str(i) for i in range(layer - 1))})\.",
                           opts.progressive_lower_lr))
        scales.append((rf"{ENCODER}{layer - 1}\.", opts.progressive_active_lr))
        # Google's per-phase schedule: a short warm-up, then (nearly) constant.
        stages.append(Stage(f"progressive-layer-{layer}", kt_steps_per_layer,
                            knowledge_transfer_loss([layer], opts, num_layers), True, scales,
                            warmup_proportion=0.1, decay=False, train_mode=dropout_on,
                            items=masked_tokens))
    return stages + [pd]


def stage_schedule(stage: Stage, learning_rate: float, end_lr_rate: float) -> optim.Schedule:
    """The learning rate inside one stage, as a function of the step within the stage."""
    warmup = int(stage.warmup_proportion * stage.steps)
    if not stage.decay or stage.steps == 0:
        return optim.constant_schedule(learning_rate, warmup)
    return optim.linear_warmup_poly_decay(learning_rate, stage.steps, warmup, end_lr_rate)


def copy_from_teacher(student: Any, teacher: Any) -> list[str]:
    """Copy every student parameter outside the encoder that the teacher has with the same name
    and shape (embeddings, embedding transformation, MLM and NSP heads), as Google's
    init_from_teacher does; norms are skipped when the two use different normalisations (the
    student's NoNorm starts at gamma=1, beta=0). Returns the copied names."""
    t_params = dict(teacher.named_parameters())
    same_norm = student.config.normalization_type == teacher.config.normalization_type
    copied = []
    for name, p in student.named_parameters():
        if ".encoder." in name or (not same_norm and "LayerNorm" in name
                                   and name.startswith(student.base_model_prefix)):
            continue
        q = t_params.get(name)
        if q is not None and q.shape == p.shape:
            p.data = p.backend.asarray(q.backend.to_numpy(q.data), dtype=p.dtype).copy()
            copied.append(name)
    return copied


def check_compatible(student_config: Any, teacher_config: Any, strategy: str) -> None:
    """Refuse a teacher that cannot be transferred into the student, naming the mismatch."""
    if strategy == "none":
        return
    s, t = student_config, teacher_config
    problems = []
    for field_name in ("hidden_size", "num_attention_heads", "vocab_size"):
        if getattr(s, field_name) != getattr(t, field_name):
            problems.append(f"{field_name}: student {getattr(s, field_name)} vs teacher "
                            f"{getattr(t, field_name)}")
    if s.num_hidden_layers != t.num_hidden_layers:
        problems.append(f"num_hidden_layers: student {s.num_hidden_layers} vs teacher "
                        f"{t.num_hidden_layers}")
    if problems:
        raise ValueError("the teacher does not match the student for knowledge transfer ("
                         "feature maps and attention maps are compared layer by layer): "
                         + "; ".join(problems))
