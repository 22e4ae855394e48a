"""The course's tokenizing rules: special tokens, clean-up before splitting, markers after, and their undo.

Text rules run on the raw string before it is split into words; token rules run on the words.
Lower-casing is done by `case_markers`, which adds `xxmaj` / `xxup` so no information is lost,
and `undo_rules` puts everything back (up to whitespace):

    from quickfit.text.rules import case_markers, replace_rep, undo_rules
    replace_rep("sooooo good")                 # 's xxrep 5 o  good'
    case_markers(["The", "BBC", "is", "I"])    # ['xxmaj', 'the', 'xxup', 'bbc', 'is', 'xxmaj', 'i']
    undo_rules(["xxbos", "xxmaj", "so", "xxwrep", "3", "xxup", "no"])   # 'So NO NO NO'
    detokenize("it ' s a t - shirt , ok .")    # "it's a t-shirt, ok." (what a writer would type)
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

__all__ = [
    "UNK",
    "PAD",
    "BOS",
    "EOS",
    "FLD",
    "REP",
    "WREP",
    "UP",
    "MAJ",
    "SPECIAL_TOKENS",
    "TEXT_RULES",
    "TOKEN_RULES",
    "DEFAULT_RULES",
    "FORMER_RULES",
    "fix_html",
    "fix_html_v1",
    "replace_rep",
    "spec_add_spaces",
    "replace_wrep",
    "case_markers",
    "undo_rules",
    "detokenize",
]

UNK, PAD, BOS, EOS, FLD = "xxunk", "xxpad", "xxbos", "xxeos", "xxfld"
REP, WREP, UP, MAJ = "xxrep", "xxwrep", "xxup", "xxmaj"
# The order fixes their indices in every Vocab: xxunk is 0 and xxpad is 1 (the models rely on it).
SPECIAL_TOKENS = (UNK, PAD, BOS, EOS, FLD, REP, WREP, UP, MAJ)

TEXT_RULES = ("fix_html", "replace_rep", "spec_add_spaces")
TOKEN_RULES = ("replace_wrep", "case_markers")
DEFAULT_RULES = TEXT_RULES + TOKEN_RULES
# Rules kept for the tokenizers they were trained with: "fix_html_v1" is fix_html before "..." became
# " …" (settings of version 1 name it "fix_html"; Tokenizer.from_dict maps them to it).
FORMER_RULES = ("fix_html_v1",)

# Each pair needs one of these characters, so most texts skip the replacements altogether.
_HTML_FIXES = (
    ("#39;", "'"),
    ("amp;", "&"),
    ("#146;", "'"),
    ("nbsp;", " "),
    ("#36;", "$"),
    ("\\n", "\n"),
    ("quot;", "'"),
    ("<br />", "\n"),
    ("<br/>", "\n"),
    ('\\"', '"'),
    ("<unk>", UNK),  # WikiText's unknown word
    (" @.@ ", "."),  # WikiText's escaped separators inside numbers ("1 @,@ 000")
    (" @,@ ", ","),
    (" @-@ ", "-"),
)
_re_html_hint = re.compile(r"[#;\\<@&]")
_re_rep = re.compile(r"(\S)(\1{2,})")
_re_spec = re.compile(r"([/#\\])")


def fix_html(text: str) -> str:
    """Undo the HTML escapes and markup scraped texts carry (`&amp;`, `<br />`, `#39;`, WikiText's `@-@`),
    and write "..." as " …" (the course's rule: one token, where `replace_rep` would make `xxrep 3 .`)."""
    return fix_html_v1(text).replace("...", " …")


def fix_html_v1(text: str) -> str:
    """`fix_html` without the "..." rule: what tokenizers of settings version 1 were trained with."""
    if _re_html_hint.search(text) is None:
        return text
    if "&" in text:  # proper entities first, so "&amp;" is "&" (not "&&" by the "amp;" fix below)
        text = html.unescape(text)
    for old, new in _HTML_FIXES:
        text = text.replace(old, new)
    return text


def _rep(m: re.Match) -> str:
    return f" {REP} {len(m.group(0))} {m.group(1)} "


def replace_rep(text: str) -> str:
    """A character repeated 3+ times becomes `xxrep n c`: "sooooo" -> "s xxrep 5 o"."""
    return _re_rep.sub(_rep, text)


def spec_add_spaces(text: str) -> str:
    """Spaces around `/`, `#` and `\\`, so "great/bad" and "#tag" split into their parts."""
    if "/" in text or "#" in text or "\\" in text:
        return _re_spec.sub(r" \1 ", text)
    return text


def replace_wrep(tokens: Sequence[str]) -> list[str]:
    """A token repeated 3+ times in a row becomes `xxwrep n tok`: "ha ha ha" -> "xxwrep 3 ha"."""
    res: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        t, j = tokens[i], i + 1
        while j < n and tokens[j] == t:
            j += 1
        if j - i >= 3:
            res += [WREP, str(j - i), t]
        else:
            res += tokens[i:j]
        i = j
    return res


def case_markers(tokens: Sequence[str]) -> list[str]:
    """Lower-case the tokens, marking "Word" with `xxmaj` and "WORD" with `xxup` (nothing is lost).

    A token that would not come back exactly ("iPhone", "McDonald") is kept as it is.
    """
    res: list[str] = []
    for t in tokens:
        low = t.lower()
        if low == t:
            res.append(t)
        elif len(t) > 1 and low.upper() == t:
            res += [UP, low]
        elif low[:1].upper() + low[1:] == t:
            res += [MAJ, low]
        else:
            res.append(t)
    return res


def _apply_case(tokens: Sequence[str]) -> list[str]:
    res: list[str] = []
    marker = None
    for t in tokens:
        if t == MAJ or t == UP:
            marker = t
            continue
        if marker == MAJ:
            t = t[:1].upper() + t[1:]
        elif marker == UP:
            t = t.upper()
        marker = None
        res.append(t)
    return res


def undo_rules(tokens: Sequence[str]) -> str:
    """The text back from word tokens: markers applied, repetitions expanded, joined by spaces.

    The leading `xxbos`, a trailing `xxeos` (the tokenizer adds them back) and `xxpad` are dropped;
    other special tokens stay as words (an `xxbos` inside generated text marks where a new text
    starts). Whitespace is not restored (tokens are joined by one space), so tokenizing the result
    gives the same tokens again.
    """
    tokens = [t for t in tokens if t != PAD]
    if tokens[:1] == [BOS]:
        tokens = tokens[1:]
    if tokens[-1:] == [EOS]:
        tokens = tokens[:-1]
    words = _apply_case(tokens)
    res: list[str] = []
    i, n = 0, len(words)
    while i < n:
        t = words[i]
        if t in (REP, WREP) and i + 2 < n and words[i + 1].isdigit():
            count, what = int(words[i + 1]), words[i + 2]
            res.append(what * count if t == REP else " ".join([what] * count))
            i += 3
        else:
            res.append(t)
            i += 1
    return " ".join(res)


_DETOK = [
    (re.compile(r" ([.,!?;:%)\]}])"), r"\1"),  # no space before closing punctuation
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r"(\w) ' (s|t|re|ve|ll|d|m)\b", re.IGNORECASE), r"\1'\2"),  # it ' s -> it's, don ' t
    (re.compile(r"(\w) - (?=\w)"), r"\1-"),  # t - shirt -> t-shirt (Multi30k writes hyphens inside words)
    (re.compile(r"(\w) / (?=\w)"), r"\1/"),
]


def detokenize(text: str) -> str:
    """A tokenizer-decoded text (tokens joined by spaces) with the spaces a writer would not put back."""
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text
