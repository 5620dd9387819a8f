"""The spot interruption handler (``bootstrap/spot-interruption-handler``, a script without a .py
name, standard library only) loaded as a module, to test its functions."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from types import ModuleType

from support import REPO

HANDLER = REPO / "bootstrap" / "spot-interruption-handler"


def load_handler() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("spot_interruption_handler", str(HANDLER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
