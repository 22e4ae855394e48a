"""`learn.summary()`: the model's layers with their output shapes for one batch, parameter counts,
trainable or frozen, and the layer groups they belong to.

    import quickfit as qf
    s = learn.summary()          # runs one validation batch through the model (eval mode, no gradients)
    print(s)                     # the table; in a notebook or the REPL the object shows itself
    s.total, s.trainable         # parameter counts
    learn.summary(depth=2)       # nested modules aggregated at depth 2 (a vision body's blocks)

Each row is a module that ran (in the order it ran) or holds parameters and did not run (shape "-"),
so the rows' parameters add up to the model's total. A parameter's layer group is its index in
`learn.layer_groups`; "trainable" is "yes", "no" (frozen) or "partly" (a frozen block whose norm
layers still train).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from quickfit.data.core import to_device

__all__ = ["LayerRow", "Summary", "summary"]


@dataclass
class LayerRow:
    name: str  # the module's path in the model ("body.0.conv")
    kind: str  # its class name
    shape: str  # output shape for the batch, "-" when it did not run
    params: int
    trainable: str  # "yes", "no", "partly" or "" (no parameters)
    groups: str  # layer groups of its parameters ("0", "1-2") or ""


@dataclass
class GroupRow:
    index: int
    params: int
    trainable: int
    lr: float | None


@dataclass
class Summary:
    model: str
    inputs: list[str]
    rows: list[LayerRow]
    groups: list[GroupRow]
    total: int
    trainable: int
    extra: list[str] = field(default_factory=list)  # loss, optimizer, callbacks

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    def __str__(self) -> str:
        head = ("layer", "type", "output shape", "params", "trainable", "group")
        cells = [head, *[(r.name, r.kind, r.shape, f"{r.params:,}", r.trainable, r.groups) for r in self.rows]]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        line = "-" * (sum(widths) + 2 * (len(widths) - 1))
        fmt = [lambda s, w=w: s.ljust(w) for w in widths]
        fmt[3] = lambda s, w=widths[3]: s.rjust(w)
        table = ["  ".join(f(c) for f, c in zip(fmt, row)).rstrip() for row in cells]
        out = [f"{self.model} (input {', '.join(self.inputs)})", line, table[0], line, *table[1:], line]
        out.append(f"Total params: {self.total:,}")
        out.append(f"Trainable params: {self.trainable:,}")
        out.append(f"Frozen params: {self.frozen:,}")
        out.append("")
        out.append(f"Layer groups: {len(self.groups)}")
        for g in self.groups:
            state = "trainable" if g.trainable == g.params else "frozen" if g.trainable == 0 else "partly frozen"
            lr = "" if g.lr is None else f", lr {g.lr:.2e}"
            out.append(f"  group {g.index}: {g.params:,} params, {state} ({g.trainable:,} trainable{lr})")
        return "\n".join(out + ([""] + self.extra if self.extra else []))

    def __repr__(self) -> str:
        return str(self)


def _shape(out) -> str:
    if isinstance(out, torch.Tensor):
        return str(list(out.shape))
    if isinstance(out, (tuple, list)):
        parts = [_shape(o) for o in out]
        parts = [p for p in parts if p]
        return ("(" + ", ".join(parts) + ")") if parts else ""
    if isinstance(out, dict):
        return _shape(list(out.values()))
    return ""


def _reported(model: nn.Module, depth: int | None) -> list[tuple[str, nn.Module]]:
    """Modules that get a row: leaves, or the modules at `depth` (their children folded in); also any
    container holding parameters of its own (a bias vector beside its embeddings)."""
    picked, seen = [], set()

    def walk(prefix: str, m: nn.Module, d: int) -> None:
        if id(m) in seen:  # a module shared by two parents: one row, its parameters counted once
            return
        seen.add(id(m))
        children = list(m.named_children())
        if not children or (depth is not None and d >= depth):
            picked.append((prefix, m, True))
            return
        if any(True for _ in m.parameters(recurse=False)):
            picked.append((prefix, m, False))
        for name, c in children:
            walk(f"{prefix}.{name}" if prefix else name, c, d + 1)

    walk("", model, 0)
    return picked


def _first_batch(learn):
    dls = learn.input_dls
    dl = dls.valid if getattr(dls, "valid", None) is not None else dls.train
    try:
        return next(iter(dl))
    except StopIteration:
        raise ValueError("summary needs one batch, and the data has none: pass xb= (the model's inputs)") from None


def summary(learn, xb=None, depth: int | None = None) -> Summary:
    """The `Summary` of `learn`'s model on `xb` (a tensor or tuple of model inputs; default: one
    batch of the validation data, else the training data). `depth` folds modules nested deeper than
    that into their ancestor's row."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be a whole number >= 1 or None, got {depth!r}")
    model = learn._unwrapped()
    if xb is None:
        batch = tuple(_first_batch(learn))
        xb = batch[: getattr(learn.input_dls, "n_inp", 1)]
    elif not isinstance(xb, (tuple, list)):
        xb = (xb,)
    xb = to_device(tuple(xb), learn.device)

    picked = _reported(model, depth)
    shapes: dict[int, list[str]] = {}
    order: list[int] = []

    def hook(i):
        def record(module, inputs, out):
            if i not in shapes:
                order.append(i)
            shapes.setdefault(i, []).append(_shape(out))

        return record

    handles = [m.register_forward_hook(hook(i)) for i, (_, m, _) in enumerate(picked)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*xb)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    group_of = {id(p): g for g, params in enumerate(learn.layer_groups) for p in params}
    rows = []
    for i in order + [i for i in range(len(picked)) if i not in shapes]:
        name, m, recurse = picked[i]
        params = list(m.parameters(recurse=recurse))
        if i not in shapes and not params:
            continue  # never ran, holds nothing: not worth a row
        n = sum(p.numel() for p in params)
        n_train = sum(p.numel() for p in params if p.requires_grad)
        trainable = "" if not params else "yes" if n_train == n else "no" if n_train == 0 else "partly"
        gs = sorted({group_of[id(p)] for p in params if id(p) in group_of})
        groups = "" if not gs else str(gs[0]) if len(gs) == 1 else f"{gs[0]}-{gs[-1]}"
        seen = shapes.get(i, ["-"])
        shape = seen[0] + (f" (x{len(seen)})" if len(seen) > 1 else "")
        rows.append(LayerRow(name or type(m).__name__, type(m).__name__, shape, n, trainable, groups))

    lrs = learn.hypers("lr") if learn.opt is not None else None
    groups = []
    for g, params in enumerate(learn.layer_groups):
        lr = lrs[g] if lrs is not None and g < len(lrs) else None
        groups.append(
            GroupRow(g, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad), lr)
        )
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    loss = learn.loss_func
    extra = [
        f"Loss: {loss!r}" if isinstance(loss, nn.Module) else f"Loss: {getattr(loss, '__name__', repr(loss))}",
        f"Optimizer: {getattr(learn.opt_func, '__name__', repr(learn.opt_func))}",
        "Callbacks: " + ", ".join(type(cb).__name__ for cb in sorted(learn.cbs, key=lambda cb: cb.order)),
    ]
    inputs = [_shape(x) or type(x).__name__ for x in xb]
    return Summary(type(model).__name__, inputs, rows, groups, total, trainable, extra)
