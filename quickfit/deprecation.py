"""Old argument names kept working for a while: one rule, one message.

    from quickfit.deprecation import renamed_argument
    def tokenize_texts(texts, tokenizer, num_workers=None, *, n_workers=None):
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "tokenize_texts")

A FutureWarning (shown to users by default, unlike DeprecationWarning outside __main__) names the
new spelling; passing both names is an error rather than a silent choice of one.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

__all__ = ["renamed_argument"]

T = TypeVar("T")


def renamed_argument(new_value: T, old_value: T | None, new: str, old: str, where: str, stacklevel: int = 3) -> T:
    """`new_value`, or `old_value` with a warning when only the old name was given."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{where}: pass {new}= only ({old}= is its deprecated old name)")
    warnings.warn(f"{where}({old}=) is deprecated; use {new}=", FutureWarning, stacklevel=stacklevel)
    return old_value
