"""Element-wise ops: arithmetic with broadcasting, and the unary calculus table.

Each backward reads like a line of a derivative table (HIPS autograd); binary ops end in
`unbroadcast` so either side may broadcast.
"""
from __future__ import annotations

from autograd.function import Function, unbroadcast


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        na, nb = self.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        na, nb = self.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        return (unbroadcast(g * b, a.shape) if na else None,
                unbroadcast(g * a, b.shape) if nb else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        ga = g / b
        return (unbroadcast(ga, a.shape) if na else None,
                unbroadcast(-ga * a / b, b.shape) if nb else None)


class Pow(Function):
    """a ** b with a tensor exponent; d/db = a**b * log(a) (defined for a > 0)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        a, b, y = self.a, self.b, self.y
        na, nb = self.needs_input_grad
        return (unbroadcast(g * b * a ** (b - 1), a.shape) if na else None,
                unbroadcast(g * y * self.xp.log(a), b.shape) if nb else None)


class PowScalar(Function):
    """x ** p for a constant Python number p (x**2, x**0.5): no log, so x may be negative."""

    def forward(self, x, p):
        self.x, self.p = x, p
        return x ** p

    def backward(self, g):
        if self.p == 0:  # the derivative is 0 everywhere; 0 * x ** -1 would be nan at x = 0
            return (self.xp.zeros_like(g),)
        return (g * (self.p * self.x ** (self.p - 1)),)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, g):
        return (g / self.x,)


class Sqrt(Function):
    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, g):
        return (g / (2 * self.y),)


class Tanh(Function):
    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, g):
        return (g * (1 - self.y * self.y),)


class Sigmoid(Function):
    def forward(self, x):
        xp = self.xp
        # exp of a non-positive number only, so large |x| neither overflows nor warns.
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, g):
        return (g * self.y * (1 - self.y),)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, g):
        return (g * self.xp.sign(self.x),)


class Relu(Function):
    def forward(self, x):
        self.y = self.be.kernel("relu_fwd")(x)
        return self.y

    def backward(self, g):
        return (self.be.kernel("relu_bwd")(self.y, g),)


class Relu6(Function):
    """min(max(x, 0), 6): the quantization-friendly activation of the QAT config."""

    def forward(self, x):
        self.y = self.xp.clip(x, 0, 6)
        return self.y

    def backward(self, g):
        y = self.y
        return (g * ((y > 0) & (y < 6)),)


class Where(Function):
    """cond ? a : b, with `cond` a constant boolean array broadcast against both."""

    def forward(self, a, b, cond):
        self.cond, self.shapes = cond, (a.shape, b.shape)
        return self.xp.where(cond, a, b)

    def backward(self, g):
        xp, cond = self.xp, self.cond
        na, nb = self.needs_input_grad
        zero = g.dtype.type(0)
        return (unbroadcast(xp.where(cond, g, zero), self.shapes[0]) if na else None,
                unbroadcast(xp.where(cond, zero, g), self.shapes[1]) if nb else None)


class Cast(Function):
    same_dtype = False

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.in_dtype),)
