"""Structure names of public data sets mapped to one vocabulary: TotalSegmentator v2 structure names, or a
catalogue organ key where TotalSegmentator has no such structure (rectum, eyes, a whole lung or kidney).

An organ is made of the names in `Organ.totalsegmentator_names` (plus its own key), so mapping to
TotalSegmentator names keeps unions right: WORD's "colon" counts for the colon and for the GI tract. A name
that is not in the table is never guessed: the import reports it with the `--map NAME=organ` that uses it.
"""
from __future__ import annotations

import re

from organseg.catalogue import ORGANS, Organ, organ
from organseg.errors import InputError

#: Structures whose absence does not make an organ incomplete (other sets label a kidney with its cysts).
OPTIONAL = frozenset({"kidney_cyst_left", "kidney_cyst_right"})

_SIDES = {"left": "left", "l": "left", "lt": "left", "right": "right", "r": "right", "rt": "right"}

#: Normalised data-set label name -> TotalSegmentator v2 name or organ key (MSD, AMOS, WORD, BTCV, FLARE,
#: OpenKBP/AAPM head-and-neck and thorax styles). Left/right forms are generated below.
_TABLE = {
    "liver": "liver", "arota": "aorta", "spleen": "spleen", "pancreas": "pancreas", "stomach": "stomach",
    "gallbladder": "gallbladder", "gall_bladder": "gallbladder", "esophagus": "esophagus",
    "oesophagus": "esophagus", "aorta": "aorta", "heart": "heart", "brain": "brain",
    "inferior_vena_cava": "inferior_vena_cava", "ivc": "inferior_vena_cava", "postcava": "inferior_vena_cava",
    "vena_cava_inferior": "inferior_vena_cava",
    "duodenum": "duodenum", "colon": "colon", "small_bowel": "small_bowel", "small_intestine": "small_bowel",
    "intestine": "small_bowel", "bowel_small": "small_bowel",
    "bladder": "urinary_bladder", "urinary_bladder": "urinary_bladder",
    "spinal_cord": "spinal_cord", "spinalcord": "spinal_cord", "cord": "spinal_cord",
    "rectum": "rectum", "thymus": "thymus",
    "kidney": "kidneys", "kidneys": "kidneys", "lung": "lungs", "lungs": "lungs", "eyes": "eyes",
    "adrenal": "adrenal_glands", "adrenal_glands": "adrenal_glands",
}
#: Paired structures: stem -> (TotalSegmentator name pattern with {side}, or an organ key for both sides).
_PAIRED = {
    "kidney": "kidney_{side}", "adrenal_gland": "adrenal_gland_{side}", "adrenal": "adrenal_gland_{side}",
    "head_of_femur": "femur_heads", "femoral_head": "femur_heads", "femur_head": "femur_heads",
    "femur": "femur_{side}", "lung": "lungs", "eye": "eyes", "globe": "eyes",
}


#: Normalised TotalSegmentator names -> their spelling (vertebrae_T11).
_TS_NAMES = {n.lower(): n for o in ORGANS for n in o.totalsegmentator_names}


def normalise(name: str) -> str:
    """Lower case, words joined by '_', CamelCase split, a bracketed abbreviation dropped
    ("LeftParotid" -> "left_parotid", "Inferior Vena Cava (IVC)" -> "inferior_vena_cava")."""
    name = re.sub(r"\(.*?\)", " ", name).strip()
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _paired(name: str) -> str | None:
    """'kidney_left', 'left_kidney', 'kidney_l', 'head_of_femur_r', 'lung_r' -> vocabulary name."""
    words = name.split("_")
    for side_first in (True, False):
        side, stem = (words[0], "_".join(words[1:])) if side_first else (words[-1], "_".join(words[:-1]))
        if side in _SIDES and stem in _PAIRED:
            return _PAIRED[stem].format(side=_SIDES[side])
    return None


def vocabulary_name(name: str, extra: dict[str, str] | None = None) -> str | None:
    """The vocabulary name of a data-set label name (user map first), or None when it is not known."""
    key = normalise(name)
    if extra and key in extra:
        return extra[key]
    if key in _TABLE:
        return _TABLE[key]
    return _paired(key) or _TS_NAMES.get(key)


def organs_of(name: str) -> list[Organ]:
    """Catalogue organs a vocabulary name belongs to (e.g. 'colon' -> colon and GI tract)."""
    return [o for o in ORGANS if name == o.key or name in o.totalsegmentator_names]


def complete_organs(names: set[str]) -> list[Organ]:
    """Organs fully expressed by these vocabulary names: the organ's own key, or all its non-optional
    TotalSegmentator structures (the five lobes make the lungs; both kidneys make the kidneys)."""
    return [o for o in ORGANS if o.key in names or
            (o.totalsegmentator_names and set(o.totalsegmentator_names) - OPTIONAL <= names)]


def parse_map(items: list[str] | None) -> dict[str, str]:
    """`--map NAME=organ` flags as {normalised NAME: organ key}; a bad flag raises a one-line error."""
    out = {}
    for item in items or []:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InputError(f"--map {item}: expected NAME=organ, e.g. --map Mandible=bones")
        out[normalise(name)] = organ(target).key
    return out


def map_hint(name: str) -> str:
    """The flag that would use a label name, quoted for a shell where needed."""
    flag = f"{name}=ORGAN"
    return f"--map '{flag}'" if re.search(r"[^\w=.-]", flag) else f"--map {flag}"
