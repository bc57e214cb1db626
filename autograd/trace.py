"""Recording the autograd graph of one forward and backward, for reading (`tinybert trace`).

    with GraphRecorder(model) as rec:          # names modules and parameters from `model`
        loss = model(x).mean()
        loss.backward()
    print(format_graph(rec.graph))

While the recorder is active, `Function.apply` reports every op it runs (inputs, output,
dtype, backend, the named kernels the forward looked up and what the op kept for backward),
`Module.__call__` reports which module's forward is running (so each op is attributed to the
innermost module, with Hugging Face's dotted names), and `Tensor.backward` hands each node's
backward to the recorder, which notes the kernels it called. Outside a recording the hooks cost
one global lookup. Nothing here changes a value: the graph is the one training builds.

The text form lists nodes in forward order, each with an id (`%12`), its inputs (`%3`, a
parameter's name, or `const`), and a second line of what backward will read. `to_dot` writes
Graphviz DOT text (no Graphviz binary is needed to write it; `dot -Tsvg` draws it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import backends.base as _backend_base
from autograd import function as _function

# Attributes every Function has that are bookkeeping, not saved tensors.
_NOT_SAVED = {"be", "xp", "needs_input_grad", "parents"}
# Ops whose forward is the array module's BLAS call rather than a named kernel.
_BLAS_OPS = {"MatMul", "Linear"}


@dataclass
class Node:
    """One op of the recorded graph."""

    index: int
    op: str                              # the Function class: Linear, Softmax, NoNorm, ...
    module: str                          # innermost module whose forward ran it ("" if none)
    inputs: list[str]                    # "%3", a parameter's name, or "const"
    input_shapes: list[tuple[int, ...]]
    shape: tuple[int, ...]
    dtype: str
    backend: str
    forward_kernels: list[str]           # "softmax_fwd [numba]", or the array op that ran
    saved: dict[str, str]                # what backward reads: name -> "float32 (2, 8, 128)"
    requires_grad: bool
    backward_kernels: list[str] = field(default_factory=list)
    backward_ran: bool = False


@dataclass
class Graph:
    nodes: list[Node]
    parameters: dict[str, tuple[int, ...]]   # parameters the graph reads, name -> shape


def describe_value(value: Any) -> str | None:
    """A saved attribute in a few words: arrays by dtype and shape, small things by repr."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{value.dtype} {tuple(value.shape)}"
    if value is None or callable(value):
        return None
    if isinstance(value, (tuple, list)) and any(hasattr(v, "shape") for v in value):
        parts = [describe_value(v) or "None" for v in value]
        return "[" + ", ".join(parts) + "]"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kernels(log: list[tuple[str, str]]) -> list[str]:
    seen: list[str] = []
    for name, impl in log:
        item = f"{name} [{impl}]"
        if item not in seen:
            seen.append(item)
    return seen


class GraphRecorder:
    """Context manager recording the graph built (and differentiated) inside it.

    `root`: a Module whose `named_modules` / `named_parameters` name what the graph touches;
    `names`: extra tensors to name (an input, say), id -> name.
    """

    def __init__(self, root: Any = None, names: dict[str, Any] | None = None) -> None:
        self.module_names: dict[int, str] = {}
        self.tensor_names: dict[int, str] = {}
        if root is not None:
            for name, module in root.named_modules():
                self.module_names.setdefault(id(module), name)
            for name, p in root.named_parameters():
                self.tensor_names[id(p)] = name
        for name, t in (names or {}).items():
            self.tensor_names[id(t)] = name
        self.graph = Graph([], {})
        self._stack: list[str] = []
        self._produced: dict[int, int] = {}       # id(output tensor) -> node index
        self._by_fn: dict[int, Node] = {}
        self._keep: list[Any] = []                # keep outputs alive: ids stay unique
        self._log: list[tuple[str, str]] = []
        self._previous: Any = None

    def __enter__(self) -> GraphRecorder:
        if _function._observer is not None:
            raise RuntimeError("GraphRecorder: another recording is active")
        _function._observer = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _function._observer = None
        _backend_base.log_kernels(None)

    # --- hooks called by Module.__call__, Function.apply and Tensor.backward ----------------
    def enter_module(self, module: Any) -> None:
        self._stack.append(self.module_names.get(id(module), type(module).__name__))

    def exit_module(self, module: Any) -> None:
        self._stack.pop()

    def before_forward(self) -> None:
        self._log = []
        _backend_base.log_kernels(self._log)

    def after_forward(self, fn: Any, inputs: Iterable[Any], out: Any) -> None:
        _backend_base.log_kernels(None)
        inputs = list(inputs)
        names = []
        for t in inputs:
            if id(t) in self._produced:
                names.append(f"%{self._produced[id(t)]}")
            elif id(t) in self.tensor_names:
                name = self.tensor_names[id(t)]
                names.append(name)
                if t.requires_grad:
                    self.graph.parameters.setdefault(name, tuple(t.shape))
            else:
                names.append("input" if t.requires_grad else "const")
        op = type(fn).__name__
        kernels = _kernels(self._log)
        if not kernels:
            xp = fn.xp.__name__
            kernels = [f"{xp}.matmul [BLAS]" if op in _BLAS_OPS else f"{xp} array ops"]
        saved = {}
        if out.requires_grad:
            for key, value in vars(fn).items():
                if key not in _NOT_SAVED:
                    text = describe_value(value)
                    if text is not None:
                        saved[key] = text
        node = Node(len(self.graph.nodes), op, self._stack[-1] if self._stack else "", names,
                    [tuple(t.shape) for t in inputs], tuple(out.shape), str(out.dtype),
                    fn.be.name, kernels, saved, out.requires_grad)
        self.graph.nodes.append(node)
        self._produced[id(out)] = node.index
        self._by_fn[id(fn)] = node
        self._keep.append(out)

    def backward(self, ctx: Any, grad: Any) -> Any:
        log: list[tuple[str, str]] = []
        previous = _backend_base.log_kernels(log)
        try:
            result = ctx.backward(grad)
        finally:
            _backend_base.log_kernels(previous)
        node = self._by_fn.get(id(ctx))
        if node is not None:
            node.backward_ran = True
            xp = ctx.xp.__name__
            node.backward_kernels = _kernels(log) or [
                f"{xp}.matmul [BLAS]" if node.op in _BLAS_OPS else f"{xp} array ops"]
        return result


# --- reading a graph ----------------------------------------------------------------------------

def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def format_node(node: Node, prefix: str = "") -> list[str]:
    """Two or three lines: the op and its data, what backward reads, its kernels."""
    module = node.module[len(prefix):].lstrip(".") if prefix else node.module
    args = ", ".join(f"{name} {_shape(s)}" for name, s in zip(node.inputs, node.input_shapes))
    lines = [f"%{node.index:<3} {node.op:<13} {_shape(node.shape):<16} {node.dtype:<8} "
             f"{node.backend:<6} {module}",
             f"       inputs: {args}",
             f"       forward: {', '.join(node.forward_kernels)}"
             + (f"   backward: {', '.join(node.backward_kernels)}" if node.backward_ran
                else "")]
    if node.saved:
        lines.append("       saved for backward: " +
                     "; ".join(f"{k} {v}" for k, v in node.saved.items()))
    elif node.requires_grad:
        lines.append("       saved for backward: nothing")
    return lines


def format_graph(graph: Graph, group: Callable[[Node], str | None] | None = None,
                 prefix: str = "") -> str:
    """The graph as text; `group(node)` names the block a node belongs to (a header is
    printed when it changes); `prefix` is stripped from module names."""
    out, current = [], object()
    for node in graph.nodes:
        label = group(node) if group else None
        if label != current and label is not None:
            out.append("")
            out.append(f"== {label} ==")
        current = label
        out.extend(format_node(node, prefix))
    ran = sum(n.backward_ran for n in graph.nodes)
    out.append("")
    out.append(f"{len(graph.nodes)} ops recorded, {ran} ran backward; "
               f"{len(graph.parameters)} named leaf tensors (parameters, inputs) get a gradient")
    return "\n".join(out).lstrip("\n") + "\n"


def to_dot(graph: Graph, group: Callable[[Node], str | None] | None = None) -> str:
    """Graphviz DOT text: ops as boxes (clustered by `group`), parameters as ellipses."""
    def quote(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph autograd {", "  rankdir=TB;", '  node [fontname="monospace"];']
    clusters: dict[str, list[str]] = {}
    loose: list[str] = []
    for n in graph.nodes:
        label = f"%{n.index} {n.op}\\n{_shape(n.shape)} {n.dtype}\\n{n.forward_kernels[0]}"
        decl = f"  n{n.index} [shape=box, label={quote(label)}];"
        name = group(n) if group else None
        (clusters.setdefault(name, []) if name else loose).append(decl)
    lines += loose
    for i, (name, decls) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{i} {{ label={quote(name)};")
        lines += ["  " + d for d in decls]
        lines.append("  }")
    params: dict[str, str] = {}
    for n in graph.nodes:
        for name in n.inputs:
            if name.startswith("%"):
                lines.append(f"  n{name[1:]} -> n{n.index};")
            elif name != "const":
                key = params.setdefault(name, f"p{len(params)}")
                lines.append(f"  {key} -> n{n.index};")
    for name, key in params.items():
        lines.append(f"  {key} [shape=ellipse, label={quote(name)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["Graph", "GraphRecorder", "Node", "describe_value", "format_graph", "format_node",
           "to_dot"]
