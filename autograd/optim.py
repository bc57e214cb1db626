"""Optimizers (SGD, AdamW, LAMB), global-norm clipping and learning-rate schedules.

AdamW and LAMB follow Google's MobileBERT code (spec section 6): eps 1e-6, weight decay 0.01,
no bias correction unless asked, and weight decay / layer adaptation skipped for parameters whose
name matches any of ("teacher", "LayerNorm", "layer_norm", "bias", "FakeLayerNorm") — regex
search, so NoNorm and LayerNorm gammas/betas and every bias are excluded. LAMB is "Adam plus a
trust ratio" (teenygrad): u = m / (sqrt(v) + eps) + wd * w, w -= lr * (||w|| / ||u||) * u.

The per-tensor update runs through the backend kernels `adamw_update` / `lamb_update`, so the
Numba backend does it in one fused pass. Optimizers hold parameters by name: names drive the
exclusion lists, the per-parameter learning-rate scales of progressive knowledge transfer, and
the keys of `state_dict()` for resume.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

import numpy as np

from autograd.module import Module, Parameter

DEFAULT_EXCLUDE = ("teacher", "LayerNorm", "layer_norm", "bias", "FakeLayerNorm")

Schedule = Callable[[int], float]


def _named(params: Any) -> list[tuple[str, Parameter]]:
    """(name, parameter) pairs from a Module, named pairs, or bare parameters ("0", "1", ...)."""
    if isinstance(params, Module):
        items = list(params.named_parameters())
    else:
        items = []
        for i, p in enumerate(params):
            items.append(p if isinstance(p, tuple) else (str(i), p))
    out, seen, names = [], set(), set()
    for name, p in items:
        if not isinstance(p, Parameter):
            raise TypeError(f"optimizer: {name!r} is a {type(p).__name__}, not a Parameter")
        if id(p) in seen:
            continue
        if name in names:
            raise ValueError(f"optimizer: two different parameters are both named {name!r}")
        seen.add(id(p))
        names.add(name)
        out.append((name, p))
    if not out:
        raise ValueError("optimizer: got an empty parameter list")
    return out


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(re.search(p, name) for p in patterns)


class Optimizer:
    """Shared bookkeeping: named parameters, the learning rate (a number or a schedule of the
    step), per-parameter learning-rate scales, the step count and the state for resume."""

    def __init__(self, params: Any, lr: float | Schedule) -> None:
        self.params = _named(params)
        self.lr = lr
        self.step_count = 0
        self.lr_scale: dict[str, float] = {name: 1.0 for name, _ in self.params}
        self.state: dict[str, dict[str, Any]] = {name: {} for name, _ in self.params}

    def current_lr(self) -> float:
        """The base learning rate of the next step."""
        return float(self.lr(self.step_count)) if callable(self.lr) else float(self.lr)

    def zero_grad(self) -> None:
        for _, p in self.params:
            p.grad = None

    def set_lr_scale(self, scale: float, pattern: str | None = None) -> None:
        """Multiply the learning rate of every parameter whose name matches `pattern` (all when
        None) by `scale`. A scale of 0 skips the parameter entirely: no update, moments kept."""
        for name, _ in self.params:
            if pattern is None or re.search(pattern, name):
                self.lr_scale[name] = float(scale)

    def reset_state(self, pattern: str | None = None) -> None:
        """Forget the moments of matching parameters (all when None)."""
        for name in self.state:
            if pattern is None or re.search(pattern, name):
                self.state[name] = {}

    def step(self) -> None:
        lr = self.current_lr()
        for name, p in self.params:
            scale = self.lr_scale[name]
            if p.grad is None or scale == 0.0:
                continue
            if p.grad.shape != p.shape:
                raise ValueError(f"optimizer: gradient of {name} has shape {p.grad.shape}, "
                                 f"parameter has {p.shape}")
            self._update(name, p, lr * scale)
        self.step_count += 1

    def _update(self, name: str, p: Parameter, lr: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _slot(self, name: str, key: str, p: Parameter) -> Any:
        slot = self.state[name].get(key)
        if slot is None:
            slot = self.state[name][key] = p.backend.xp.zeros_like(p.data)
        return slot

    # --- resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat name -> host array: "step" and "state.<param>.<slot>" (npz/safetensors-ready)."""
        out = {"step": np.asarray(self.step_count, dtype=np.int64)}
        backend_of = dict(self.params)
        for name, slots in self.state.items():
            for key, arr in slots.items():
                out[f"state.{name}.{key}"] = backend_of[name].backend.to_numpy(arr).copy()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; unknown parameters or wrong shapes are listed."""
        if "step" not in state:
            raise ValueError("optimizer state: missing key 'step'")
        step = np.asarray(state["step"])
        if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
            raise ValueError(f"optimizer state: 'step' must be a non-negative integer scalar, "
                             f"got {step.dtype} of shape {step.shape}")
        params = dict(self.params)
        new: dict[str, dict[str, Any]] = {name: {} for name in params}
        problems = []
        for key, arr in state.items():
            if key == "step":
                continue
            if not key.startswith("state.") or key.count(".") < 2:
                problems.append(f"unexpected key {key}")
                continue
            name, slot = key[len("state."):].rsplit(".", 1)
            p = params.get(name)
            if p is None:
                problems.append(f"state for unknown parameter {name}")
            elif tuple(np.shape(arr)) != p.shape:
                problems.append(f"{key}: saved {tuple(np.shape(arr))} vs parameter {p.shape}")
            elif np.asarray(arr).dtype.kind != "f" or not np.isfinite(arr).all():
                problems.append(f"{key}: not finite floating-point values")
            else:
                new[name][slot] = p.backend.asarray(np.array(arr, dtype=p.dtype))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        self.state = new
        self.step_count = int(step)


class SGD(Optimizer):
    """w -= lr * v with v = momentum * v + (g + weight_decay * w) (heavy-ball momentum)."""

    def __init__(self, params: Any, lr: float | Schedule, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.momentum, self.weight_decay = momentum, weight_decay

    def _update(self, name: str, p: Parameter, lr: float) -> None:
        g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
        if self.momentum:
            v = self._slot(name, "momentum", p)
            v *= self.momentum
            v += g
            g = v
        p.data -= lr * g


class AdamW(Optimizer):
    """Adam with decoupled weight decay, Google's AdamWeightDecayOptimizer by default:
    w -= lr * (m / (sqrt(v) + eps) + weight_decay * w), no bias correction unless asked."""

    kernel = "adamw_update"

    def __init__(self, params: Any, lr: float | Schedule, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, bias_correction: bool = False,
                 exclude_from_weight_decay: Iterable[str] = DEFAULT_EXCLUDE) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must lie in [0, 1), got {betas}")
        if eps <= 0:
            raise ValueError(f"{type(self).__name__}: eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = b1, b2, eps
        self.weight_decay, self.bias_correction = weight_decay, bias_correction
        patterns = tuple(exclude_from_weight_decay)
        self.decays = {name: not _matches(name, patterns) for name, _ in self.params}

    def _bias_terms(self) -> tuple[float, float]:
        if not self.bias_correction:
            return 1.0, 1.0
        t = self.step_count + 1
        return 1.0 - self.beta1 ** t, 1.0 - self.beta2 ** t

    def _update(self, name: str, p: Parameter, lr: float) -> None:
        c1, c2 = self._bias_terms()
        wd = self.weight_decay if self.decays[name] else 0.0
        p.backend.kernel(self.kernel)(p.data, p.grad, self._slot(name, "m", p),
                                      self._slot(name, "v", p), lr, self.beta1, self.beta2,
                                      self.eps, wd, c1, c2)


class LAMB(AdamW):
    """Layer-wise adaptive moments (You et al. 2019) as in Google's lamb_optimizer.py: the AdamW
    direction u, scaled per tensor by the trust ratio ||w|| / ||u|| (1 if either is 0 or the
    parameter is excluded from layer adaptation, by default the weight-decay exclusions)."""

    kernel = "lamb_update"

    def __init__(self, params: Any, lr: float | Schedule, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, bias_correction: bool = False,
                 exclude_from_weight_decay: Iterable[str] = DEFAULT_EXCLUDE,
                 exclude_from_layer_adaptation: Iterable[str] | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, bias_correction,
                         exclude_from_weight_decay)
        patterns = tuple(exclude_from_weight_decay if exclude_from_layer_adaptation is None
                         else exclude_from_layer_adaptation)
        self.adapts = {name: not _matches(name, patterns) for name, _ in self.params}
        self.last_trust_ratio: dict[str, float] = {}

    def _update(self, name: str, p: Parameter, lr: float) -> None:
        c1, c2 = self._bias_terms()
        wd = self.weight_decay if self.decays[name] else 0.0
        self.last_trust_ratio[name] = p.backend.kernel(self.kernel)(
            p.data, p.grad, self._slot(name, "m", p), self._slot(name, "v", p), lr, self.beta1,
            self.beta2, self.eps, wd, c1, c2, self.adapts[name])


def clip_grad_norm(params: Any, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most `max_norm` (TF's
    clip_by_global_norm); returns the norm before clipping (inf/nan passed through, unscaled)."""
    tensors = (params.parameters() if isinstance(params, Module)
               else [p[1] if isinstance(p, tuple) else p for p in params])
    grads = [p for p in tensors if p.grad is not None]
    total = 0.0
    for p in grads:
        g = p.grad.astype(np.float64, copy=False)  # in float32, a gradient of 1e20 overflows
        total += float((g * g).sum())
    norm = math.sqrt(total)
    if math.isfinite(norm) and norm > max_norm > 0:
        scale = max_norm / norm
        for p in grads:
            p.grad = p.grad * scale   # out of place: gradient arrays may be shared
    return norm


# --- learning-rate schedules (spec 6.3) ----------------------------------------------------------

def linear_warmup_poly_decay(init_lr: float, num_train_steps: int, warmup_steps: int = 0,
                             end_lr_rate: float = 1e-4, power: float = 1.0) -> Schedule:
    """Google's create_optimizer schedule: init * s / warmup during warm-up, then
    (init - init*end_rate) * (1 - s/N)^power + init*end_rate, held at the end value after N."""
    if num_train_steps <= 0:
        raise ValueError(f"schedule: num_train_steps must be positive, got {num_train_steps}")
    if warmup_steps < 0:
        raise ValueError(f"schedule: warmup_steps must be >= 0, got {warmup_steps}")
    end = init_lr * end_lr_rate

    def lr(step: int) -> float:
        if step < warmup_steps:
            return init_lr * step / warmup_steps
        frac = min(step, num_train_steps) / num_train_steps
        return (init_lr - end) * (1.0 - frac) ** power + end
    return lr


def constant_schedule(init_lr: float, warmup_steps: int = 0) -> Schedule:
    """init_lr, after an optional linear warm-up from 0."""
    def lr(step: int) -> float:
        return init_lr * step / warmup_steps if step < warmup_steps else init_lr
    return lr
