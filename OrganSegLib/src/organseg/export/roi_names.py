"""What RTSTRUCT ROIs and DICOM SEG segments are called: TG-263 (default), the catalogue's names, or a clinic's own.

A clinic's names file is JSON mapping what is exported (an organ key, or `<pair>_right` / `<pair>_left` for the
sides of a paired organ; `organseg organs` lists them) to the name its planning protocol uses, e.g.
`{"spinal_cord": "Cord", "lungs_right": "Lung Rt", "lungs_left": "Lung Lt"}`. It is checked before anything is
written: JSON, known keys, names of 1-16 characters (TG-263's limit, and what planning systems display) without
backslashes or control characters, no name used twice, and every organ the export holds named.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from organseg.catalogue import ORGANS, Organ, Part
from organseg.errors import InputError

CHOICES = ("tg263", "catalogue")  #: built-in schemes; anything else is a names file
MAX_CHARS = 16


@dataclass(frozen=True)
class RoiNames:
    """A naming scheme: `tg263`, `catalogue`, or a names file's map (part key -> name)."""

    scheme: str  #: "tg263", "catalogue" or the names file's path
    names: dict[str, str] | None = None

    def name(self, part: Part) -> str:
        if self.scheme == "tg263":
            return part.tg263
        if self.scheme == "catalogue":
            return part.display_name
        return self.names[part.key]  # type: ignore[index]

    def check_covers(self, organs: Iterable[Organ]) -> None:
        """Raise InputError when a names file leaves out a part of these organs (both sides of a pair)."""
        if self.names is None:
            return
        missing = [p.key for o in organs for p in o.parts() if p.key not in self.names]
        if missing:
            raise InputError(f"{self.scheme}: names no ROI for {', '.join(missing)}; add "
                             f"{', '.join(repr(k) for k in missing[:3])}{' ...' if len(missing) > 3 else ''}")


TG263_NAMES = RoiNames("tg263")  #: the default


def part_keys() -> dict[str, Part]:
    """Every key a names file may use: each organ's parts (a pair's sides, not the pair)."""
    return {p.key: p for o in ORGANS for p in o.parts()}


def load_roi_names(spec: str | Path | None) -> RoiNames:
    """`tg263` (or None), `catalogue`, or the path of a names file, checked."""
    if spec is None or str(spec) in CHOICES:
        return RoiNames(str(spec or "tg263"))
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such names file; --roi-names takes tg263, catalogue or a JSON file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the names file ({err})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err.msg} at line {err.lineno}); write it as "
                         '{"spinal_cord": "Cord", "lungs_left": "Lung_L"}') from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: should be a JSON object mapping organs to names, not a {type(data).__name__}")
    known = part_keys()
    pairs = {o.key for o in ORGANS if o.paired}
    seen: dict[str, str] = {}
    for key, name in data.items():
        if key in pairs:
            raise InputError(f"{path}: '{key}' is exported as two ROIs; name '{key}_right' and '{key}_left' instead")
        if key not in known:
            raise InputError(f"{path}: unknown organ '{key}'; `organseg organs` lists the keys a names file takes")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{path}: the name of '{key}' should be a non-empty string")
        if len(name) > MAX_CHARS:
            raise InputError(f"{path}: the name '{name}' of '{key}' has {len(name)} characters; at most "
                             f"{MAX_CHARS} (TG-263)")
        if "\\" in name or any(ord(c) < 32 for c in name):
            raise InputError(f"{path}: the name of '{key}' holds a backslash or a control character")
        if name.casefold() in seen:
            raise InputError(f"{path}: the name '{name}' is given to both '{seen[name.casefold()]}' and '{key}'")
        seen[name.casefold()] = key
    return RoiNames(str(path), dict(data))
