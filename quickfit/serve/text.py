"""Serving text exports: a classifier, a language model (continues the text), a translation model.

    POST /predict {"text": "A gripping, funny film."}
    POST /predict {"text": "The film", "n_words": 20, "temperature": 0.8, "seed": 1}     # language model
    POST /predict {"text": "Ein Hund läuft im Schnee."}                                   # seq2seq

Empty text is refused (422). A language model samples: with a `seed` the answer is the one
`learn.predict(text, n_words, temperature, seed=seed)` gives; without one it varies, as `predict` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from quickfit.serve.handlers import Handler, RequestInput
from quickfit.serve.inputs import BadInput, number, text_field

__all__ = ["TextClassifierHandler", "LanguageModelHandler", "TranslationHandler"]


class _TextHandler(Handler):
    input = "text"
    example = '{"text": "..."}'

    def info(self) -> dict:
        return {"input": {"type": "text", "field": "text", "max_chars": self.limits.max_text_chars}}

    def parse(self, req: RequestInput):
        return text_field(self.json_of(req), "text", self.limits.max_text_chars)


class TextClassifierHandler(_TextHandler):
    kind = "text_classification"

    def info(self) -> dict:
        return {**super().info(), "classes": [str(c) for c in self.learn.dls.classes]}

    def predict_batch(self, items: list[str]) -> list:
        dls = self.learn.dls
        preds, _ = self.learn.get_preds(dl=dls.test_dl(items, bs=len(items)), progress=False)
        return [dls.decode_pred(p) for p in preds]

    def respond(self, item: str, result) -> dict:
        label, index, probs = result
        classes = [str(c) for c in self.learn.dls.classes]
        return {"prediction": label, "index": index, "probabilities": dict(zip(classes, probs.tolist()))}


@dataclass(frozen=True)
class Continuation:
    text: str
    n_words: int
    temperature: float
    seed: int | None


class LanguageModelHandler(_TextHandler):
    """`learn.predict(text, n_words, temperature, seed=seed)` for each request, one after the other (each
    continuation is a loop of its own over the words)."""

    kind = "language_model"
    max_words = 200

    def info(self) -> dict:
        info = super().info()
        info["input"].update(n_words=20, max_words=self.max_words, temperature=1.0)
        return info

    def parse(self, req: RequestInput) -> Continuation:
        body = self.json_of(req)
        text = text_field(body, "text", self.limits.max_text_chars)
        n = number(body.get("n_words", 20), "'n_words'")
        if n != int(n) or not 1 <= n <= self.max_words:
            raise BadInput(422, f"'n_words' must be a whole number from 1 to {self.max_words}, got {body['n_words']!r}")
        t = number(body.get("temperature", 1.0), "'temperature'")
        if not 0 <= t <= 10:
            raise BadInput(422, f"'temperature' must be from 0 (greedy) to 10, got {t:g}")
        seed = body.get("seed")
        if seed is not None and seed != "":
            s = number(seed, "'seed'")
            if s != int(s) or not 0 <= s < 2**63:
                raise BadInput(422, f"'seed' must be a whole number from 0 to 2**63 - 1, got {seed!r}")
            seed = int(s)
        else:
            seed = None
        return Continuation(text, int(n), t, seed)

    def predict_batch(self, items: list[Continuation]) -> list:
        return [self.learn.predict(c.text, n_words=c.n_words, temperature=c.temperature, seed=c.seed) for c in items]

    def respond(self, item: Continuation, result: str) -> dict:
        return {"prediction": result, "text": result}


class TranslationHandler(_TextHandler):
    """`learn.predict(sentence)` (greedy `translate`). Sentences of the same length in tokens are translated
    together: no padding, so each gets what it gets alone (the decoding limit follows the source's length)."""

    kind = "translation"
    example = '{"text": "a sentence to translate"}'

    def parse(self, req: RequestInput) -> str:
        text = super().parse(req)
        try:
            self.learn.dls.encode_sources([text])
        except ValueError as e:
            raise BadInput(422, f"'text' has nothing to translate: {e}") from None
        return text

    def predict_batch(self, items: list[str]) -> list:
        ids, offsets = self.learn.dls.encode_sources(items)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate((offsets[1:] - offsets[:-1]).tolist()):
            groups.setdefault(n, []).append(i)
        out: list[str] = [""] * len(items)
        for idx in groups.values():
            for i, t in zip(idx, self.learn.translate([items[i] for i in idx])):
                out[i] = t
        return out

    def respond(self, item: str, result: str) -> dict:
        return {"prediction": result, "translation": result}


HANDLERS = {
    "text_classifier": TextClassifierHandler,
    "language_model": LanguageModelHandler,
    "translation": TranslationHandler,
}
