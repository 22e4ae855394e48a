"""The text application as the engine sees it: the model configurations and tasks `load_learner`
rebuilds its learners from, and what `quickfit predict` does with its models: each input is a text
file or the text itself (see quickfit/apps.py and quickfit/cli_hooks.py).
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, CommandError, print_predictions
from quickfit.text.learner import LanguageModelTask, TextClassifierTask
from quickfit.text.models.core import LanguageModelConfig, TextClassifierConfig
from quickfit.text.seq2seq.learner import Seq2SeqConfig, TranslationTask

__all__ = ["APP", "CLI"]


# what a user passes as a file, never as the text to classify: such a name that is not a file is a typo
_FILE_SUFFIXES = {
    ".txt", ".csv", ".tsv", ".md", ".json", ".jsonl", ".xml", ".html", ".htm", ".log", ".rtf", ".doc", ".docx",
    ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".qf",
}  # fmt: skip


def _text_of(item: str) -> str:
    """The text of a file named `item`, or `item` itself when it is a text; a name that looks like a file's
    but is none, or a file that is not UTF-8 text, is a CommandError naming it (exit 2)."""
    path = Path(item)
    try:
        is_file = path.is_file()
    except OSError:  # a text too long to be a file name, say
        is_file = False
    if is_file:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CommandError(
                f"{item}: not a UTF-8 text file (a text model predicts from text files or texts)"
            ) from None
    if not any(c.isspace() for c in item) and (path.suffix.lower() in _FILE_SUFFIXES or "/" in item):
        raise CommandError(
            f"{item}: no such file (to predict from this text itself, write it with a space or quote a sentence)"
        )
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
