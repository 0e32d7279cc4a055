"""Load user extensions (patchout strategies, variants) from files or modules by name."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from passt.utils.errors import UsageError

ENV_VAR = "PASST_PLUGINS"


def _is_file(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec


def portable(spec: str) -> str:
    """``spec`` as another process (another folder, another machine) can load it: a file's
    absolute path; a module name as it is."""
    return str(Path(spec).resolve()) if _is_file(spec) else spec


def load_plugin(spec: str) -> ModuleType:
    """Import ``spec``: a ``.py`` file path or an importable module name."""
    if _is_file(spec):
        path = Path(spec).resolve()
        if path.is_dir():
            raise UsageError(f"plugin {spec} is a folder; a plugin is a .py file or an "
                             "importable module name")
        if not path.is_file():
            raise FileNotFoundError(f"plugin file not found: {spec}")
        name = f"passt_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"plugin {spec!r} is neither a .py file nor an importable module: {e}"
        ) from None


def load_plugins(specs: Iterable[str] = ()) -> list[ModuleType]:
    """Import each spec, then those in ``$PASST_PLUGINS`` (separated by ``os.pathsep``)."""
    env = [s for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s]
    return [load_plugin(s) for s in [*specs, *env]]
