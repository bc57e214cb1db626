"""tinybert's autograd engine: Tensor, the op set, modules, optimizers, gradcheck.

    from autograd import Tensor, no_grad, gradcheck
    import autograd.functional as F
    from autograd import nn, optim

Note: this top-level package name is the design card's; it shadows the unrelated PyPI package
`autograd` (HIPS), so do not install both in one environment.
"""
from __future__ import annotations

from autograd.function import Function, enable_grad, is_grad_enabled, no_grad
from autograd.gradcheck import GradcheckError, gradcheck
from autograd.tensor import Tensor

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
           "GradcheckError"]
