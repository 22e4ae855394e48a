"""The text application as the engine sees it: the model configurations and tasks `load_learner`
rebuilds its learners from, and what `quickfit predict` does with its models: each input is a text
file or the text itself (see quickfit/apps.py and quickfit/cli_hooks.py).
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, print_predictions
from quickfit.text.learner import LanguageModelTask, TextClassifierTask
from quickfit.text.models.core import LanguageModelConfig, TextClassifierConfig
from quickfit.text.seq2seq import Seq2SeqConfig, TranslationTask

__all__ = ["APP", "CLI"]


def _text_of(item: str) -> str:
    path = Path(item)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except OSError:  # a text too long to be a file name, say
        pass
    return item


def _predict(model: Path, inputs: list[str]) -> list:
    from quickfit.loading import load_learner

    learn = load_learner(model)
    return print_predictions([(item, learn.predict(_text_of(item))) for item in inputs])


CLI = AppCLI(
    predict=_predict,
    predict_inputs="text files, or the texts themselves",
    inputs_are_files=False,
)

APP = register_app(
    App(
        "text",
        models=(LanguageModelConfig, TextClassifierConfig, Seq2SeqConfig),
        tasks=(LanguageModelTask, TextClassifierTask, TranslationTask),
        cli=CLI,
    )
)
