"""Optional dependencies ("extras"): import one, or fail with the pip command that installs it.

from quickfit.extras import require
datasets = require("sklearn.datasets", package="scikit-learn", extra="demo", what="quickfit demo")
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def require(module: str, package: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise `MissingExtraError` naming `package` and `pip install "quickfit[extra]"`.

    Only a missing `module` (or one of its parents) is reported this way: an import error raised
    inside an installed package is a different problem and propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        parts = module.split(".")
        parents = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if getattr(e, "name", None) not in parents:
            raise
        raise MissingExtraError(
            f'{what} needs {package}, which is not installed: pip install "quickfit[{extra}]"'
        ) from None
