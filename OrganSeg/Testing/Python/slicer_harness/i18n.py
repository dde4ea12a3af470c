"""`slicer.i18n` where slicer-core lacks it: the application's translation functions, giving the English text
(as Slicer does without a translation installed)."""
from __future__ import annotations

import sys
import types

import slicer


def tr(text: str) -> str:
    return text


def translate(context: str, text: str) -> str:
    return text


def install() -> None:
    """Make `from slicer.i18n import tr as _` and `translate` work where slicer-core lacks them."""
    import importlib.util
    if "slicer.i18n" not in sys.modules and importlib.util.find_spec("slicer.i18n") is None:
        module = types.ModuleType("slicer.i18n")
        module.tr, module.translate = tr, translate
        sys.modules["slicer.i18n"] = module
        slicer.i18n = module
