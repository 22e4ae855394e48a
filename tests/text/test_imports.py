"""quickfit.text's modules import each other in one direction: the token data type is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import quickfit.text

TEXT = Path(quickfit.text.__file__).parent


def _runtime_imports(module: str) -> set[str]:
    """quickfit.text modules imported by `module` anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse((TEXT / f"{module}.py").read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and id(node) not in skip
            and (node.module or "").startswith("quickfit.text")
        ):
            found.add(node.module.removeprefix("quickfit.text.").split(".")[0])
    return found


def test_tokens_module_is_a_leaf_and_corpus_tokenize_pipeline_form_no_cycle():
    assert _runtime_imports("tokens") == set()
    graph = {m: _runtime_imports(m) & {"tokens", "corpus", "tokenize", "pipeline", "rules"}
             for m in ("tokens", "corpus", "tokenize", "pipeline", "rules")}  # fmt: skip
    assert graph["corpus"] == {"tokens"}  # no import of the tokenizer, not even inside a function
    assert "corpus" not in graph["pipeline"]

    def reaches(a: str, b: str, seen: frozenset = frozenset()) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in graph[a])

    assert not any(reaches(m, m) for m in graph), graph


def test_the_public_names_stay_importable_from_where_they_were():
    from quickfit.text.corpus import TokenizedCorpus, gather_texts, tokenize_corpus
    from quickfit.text.tokens import TokenizedCorpus as Leaf
    from quickfit.text.tokens import gather_texts as leaf_gather

    assert TokenizedCorpus is Leaf and gather_texts is leaf_gather and callable(tokenize_corpus)
