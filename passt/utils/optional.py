"""Optional dependencies, imported by the code path that needs them, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

PIP_NAMES = {"sklearn": "scikit-learn"}  # where the pip name differs from the import name


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"soundfile"``) for ``purpose`` (e.g. ``"decoding audio"``).

    Raises `ModuleNotFoundError` "PURPOSE needs PACKAGE: pip install PIP-NAME" when the
    package is missing.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(f"{e.name}.")):
            raise  # the package is there, but something it imports is not
        package = module.partition(".")[0]
        raise ModuleNotFoundError(
            f"{purpose} needs {package}: pip install {PIP_NAMES.get(package, package)}",
            name=package) from None
