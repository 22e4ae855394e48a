"""Serving tabular and collaborative-filtering exports: a row of columns, a (user, item) pair.

    POST /predict {"row": {"shape": "star", "x": 0.1, "z": 0.0}}    # tabular: every input column
    POST /predict {"user": "u1", "item": 100}                         # collab: ids seen in training

Each value is checked against the export's columns before the model sees it: a missing column, a number
column given text, a category given a list, an unknown user are 422 errors that name the column or id.
"""

from __future__ import annotations

from typing import Any

from quickfit.serve.handlers import Handler, RequestInput
from quickfit.serve.inputs import BadInput, field, number

__all__ = ["TabularHandler", "CollabHandler"]

_MAX_CHOICES = 1000  # ids / categories listed in /info for the page's pickers


def _by_text(values: list) -> dict[str, Any]:
    """A value as a form sends it (a string) -> the training value (`3` for "3")."""
    return {str(v): v for v in values}


def _match(value: Any, values: list, lookup: dict[str, Any]) -> tuple[Any, bool]:
    """(the training value `value` stands for, whether it was seen in training)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        for v in values:  # exact first: 1 and "1" are different categories when both exist
            if type(v) is type(value) and v == value:
                return v, True
        if str(value) in lookup:
            return lookup[str(value)], True
    return value, False


class TabularHandler(Handler):
    """One row in, `learn.predict(row)` out: a label with probabilities, or a value."""

    input = "row"
    example = '{"row": {"column": value, ...}}'

    def __init__(self, learn, limits) -> None:
        super().__init__(learn, limits)
        from quickfit.tabular.procs import FillMissing, Normalize

        dls = learn.dls
        self.cats, self.conts = list(dls.input_cat_names), list(dls.input_cont_names)
        categorify = dls.processor.categorify
        self.vocabs = {n: list(categorify.vocabs.get(n, []))[1:] if categorify else [] for n in self.cats}
        self._lookup = {n: _by_text(v) for n, v in self.vocabs.items()}
        procs = dls.processor.procs
        self.fills = any(isinstance(p, FillMissing) for p in procs)
        norm = next((p for p in procs if isinstance(p, Normalize)), None)
        self.defaults = {n: norm.means.get(n) for n in self.conts} if norm is not None else {}

    @property
    def kind(self) -> str:
        return "tabular_classification" if self.learn.dls.is_classification else "tabular_regression"

    def info(self) -> dict:
        columns = [{"name": n, "type": "category", "choices": [str(v) for v in self.vocabs[n][:_MAX_CHOICES]]}
                   for n in self.cats]  # fmt: skip
        columns += [{"name": n, "type": "number", "missing_ok": self.fills, "default": self.defaults.get(n)}
                    for n in self.conts]  # fmt: skip
        dls = self.learn.dls
        return {"input": {"type": "row", "field": "row", "columns": columns}, "target": list(dls.y_names),
                "classes": [str(c) for c in dls.y_vocab] if dls.is_classification else []}  # fmt: skip

    def parse(self, req: RequestInput) -> dict:
        row = field(self.json_of(req), "row", self.example)
        if not isinstance(row, dict):
            raise BadInput(422, f"'row' must be a JSON object of column: value, got {type(row).__name__}")
        needed = [*self.cats, *self.conts]
        missing = [n for n in needed if n not in row]
        if missing:
            raise BadInput(422, f"column(s) {missing} missing from the row (needed: {needed})")
        out: dict[str, Any] = {}
        for n in self.conts:
            out[n] = number(row[n], f"column {n!r}", allow_missing=self.fills)
        for n in self.cats:
            v = row[n]
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise BadInput(422, f"column {n!r} must be a category (a string or number), got {type(v).__name__}")
            out[n] = _match(v, self.vocabs[n], self._lookup[n])[0]
        return out

    def predict_batch(self, items: list[dict]) -> list:
        dls = self.learn.dls
        preds, _ = self.learn.get_preds(dl=dls.test_dl(items, bs=len(items)), progress=False)
        return [dls.decode_pred(p) for p in preds]

    def respond(self, item: dict, result) -> dict:
        unseen = {n: item[n] for n in self.cats if item[n] is not None and item[n] not in self.vocabs[n]}
        extra = {"unknown_categories": unseen} if unseen else {}  # predicted as missing (#na#), as in training
        if self.learn.dls.is_classification:
            label, index, probs = result
            classes = [str(c) for c in self.learn.dls.y_vocab]
            return {"prediction": label, "index": index, "probabilities": dict(zip(classes, probs.tolist())), **extra}
        return {"prediction": result, "value": result, **extra}


class CollabHandler(Handler):
    """A (user, item) pair of training ids in, `learn.predict((user, item))` out: the predicted rating."""

    input = "pair"
    kind = "collab"
    example = '{"user": ..., "item": ...}'

    def __init__(self, learn, limits) -> None:
        super().__init__(learn, limits)
        classes = learn.dls.classes
        self.users, self.items = list(classes["user"][1:]), list(classes["item"][1:])
        self._lookup = {"user": _by_text(self.users), "item": _by_text(self.items)}

    def info(self) -> dict:
        dls = self.learn.dls
        return {"input": {"type": "pair", "fields": ["user", "item"], "user_name": dls.user_name,
                          "item_name": dls.item_name, "n_users": len(self.users), "n_items": len(self.items),
                          "users": [str(u) for u in self.users[:_MAX_CHOICES]],
                          "items": [str(i) for i in self.items[:_MAX_CHOICES]]}}  # fmt: skip

    def parse(self, req: RequestInput) -> tuple:
        body = self.json_of(req)
        pair = []
        for what, known in (("user", self.users), ("item", self.items)):
            v = field(body, what, self.example)
            match, seen = _match(v, known, self._lookup[what])
            if not seen:
                raise BadInput(422, f"unknown {what} {v!r}: not among the {len(known):,} {what}s seen in training")
            pair.append(match)
        return tuple(pair)

    def predict_batch(self, items: list[tuple]) -> list:
        return [float(r) for r in self.learn.predict_pairs(items)]

    def respond(self, item: tuple, result: float) -> dict:
        return {"prediction": result, "rating": result, "user": str(item[0]), "item": str(item[1])}


HANDLERS = {"tabular": TabularHandler, "collab": CollabHandler}
