"""The single catalogue of organs: names, label values, colours, SNOMED CT codes, regions, anchor roles.

Everything that names or colours an organ (CLI, outputs, DICOM exports, the Slicer module) reads it here.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from organseg.errors import InputError

#: Slicer/DICOM segmentation category for all catalogue entries.
CATEGORY = ("SCT", "123037004", "Anatomical Structure")


@dataclass(frozen=True)
class Organ:
    """One organ of the catalogue."""

    key: str  #: short name used on the command line and in file names
    label: int  #: value in the multi-label map (1..23)
    display_name: str
    colour: tuple[int, int, int]  #: RGB 0-255
    snomed_code: str  #: SNOMED CT code of the structure (coding scheme "SCT")
    snomed_meaning: str
    region: str  #: head, thorax, abdomen, pelvis or skeleton (groups the Slicer checklist)
    anchor: bool  #: one of the six anchor organs of the post-processing rules
    totalsegmentator_names: tuple[str, ...]  #: TotalSegmentator v2 labels that make up this organ
    min_extent_mm: float  #: smallest plausible cranio-caudal extent in an adult CT (sets the coarse search step)

    @property
    def colour_float(self) -> tuple[float, float, float]:
        """Colour as 0-1 floats (Slicer, VTK)."""
        return tuple(c / 255.0 for c in self.colour)  # type: ignore[return-value]

    @property
    def snomed_type(self) -> tuple[str, str, str]:
        """(scheme, code, meaning) triple as Slicer terminology and DICOM use it."""
        return ("SCT", self.snomed_code, self.snomed_meaning)


_VERTEBRAE = tuple(f"vertebrae_{v}" for v in
                   ["C1", "C2", "C3", "C4", "C5", "C6", "C7"] + [f"T{i}" for i in range(1, 13)]
                   + ["L1", "L2", "L3", "L4", "L5", "S1"])
_RIBS = tuple(f"rib_{side}_{i}" for side in ("left", "right") for i in range(1, 13))
_BONES = _VERTEBRAE + _RIBS + (
    "sacrum", "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left",
    "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "skull", "sternum")

ORGANS: tuple[Organ, ...] = (
    Organ("liver", 1, "Liver", (221, 130, 101), "10200004", "Liver", "abdomen", True, ("liver",), 80),
    Organ("heart", 2, "Heart", (206, 110, 84), "80891009", "Heart", "thorax", False, ("heart",), 70),
    Organ("pancreas", 3, "Pancreas", (249, 180, 111), "15776009", "Pancreas", "abdomen", False, ("pancreas",), 30),
    Organ("bones", 4, "Bones", (241, 214, 145), "272673000", "Bone", "skeleton", False, _BONES, 200),
    Organ("kidneys", 5, "Kidneys", (185, 102, 83), "64033007", "Kidney", "abdomen", True,
          ("kidney_left", "kidney_right", "kidney_cyst_left", "kidney_cyst_right"), 60),
    Organ("spleen", 6, "Spleen", (157, 108, 162), "78961009", "Spleen", "abdomen", True, ("spleen",), 50),
    Organ("urinary_bladder", 7, "Urinary bladder", (222, 154, 132), "89837001", "Urinary bladder", "pelvis",
          True, ("urinary_bladder",), 30),
    Organ("esophagus", 8, "Esophagus", (211, 171, 143), "32849002", "Esophagus", "thorax", False,
          ("esophagus",), 100),
    Organ("femur_heads", 9, "Femur heads", (255, 238, 170), "2812003", "Head of femur", "pelvis", True,
          ("femur_left", "femur_right"), 35),
    Organ("lungs", 10, "Lungs", (197, 165, 145), "39607008", "Lung", "thorax", True,
          ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
           "lung_middle_lobe_right", "lung_lower_lobe_right"), 120),
    Organ("spinal_cord", 11, "Spinal cord", (244, 214, 49), "2748008", "Spinal cord", "skeleton", False,
          ("spinal_cord",), 200),
    Organ("aorta", 12, "Aorta", (224, 97, 76), "15825003", "Aorta", "thorax", False, ("aorta",), 150),
    Organ("gallbladder", 13, "Gallbladder", (139, 150, 98), "28231008", "Gallbladder", "abdomen", False,
          ("gallbladder",), 30),
    Organ("adrenal_glands", 14, "Adrenal glands", (249, 186, 150), "23451007", "Adrenal gland", "abdomen",
          False, ("adrenal_gland_left", "adrenal_gland_right"), 20),
    Organ("inferior_vena_cava", 15, "Inferior vena cava", (0, 151, 206), "64131007", "Inferior vena cava",
          "abdomen", False, ("inferior_vena_cava",), 80),
    Organ("colon", 16, "Colon", (204, 168, 143), "71854001", "Colon", "abdomen", False, ("colon",), 80),
    Organ("rectum", 17, "Rectum", (188, 147, 131), "34402009", "Rectum", "pelvis", False, (), 40),
    Organ("small_intestine", 18, "Small intestine", (205, 167, 142), "30315005", "Small intestine", "abdomen",
          False, ("small_bowel",), 60),
    Organ("stomach", 19, "Stomach", (216, 132, 105), "69695003", "Stomach", "abdomen", False, ("stomach",), 50),
    Organ("thymus", 20, "Thymus", (160, 55, 100), "9875009", "Thymus", "thorax", False, (), 20),
    Organ("gi_tract", 21, "GI tract", (200, 150, 120), "122865005", "Gastrointestinal tract", "abdomen", False,
          ("duodenum", "small_bowel", "colon"), 80),
    Organ("eyes", 22, "Eyes", (194, 255, 194), "81745001", "Eye", "head", False, (), 15),
    Organ("brain", 23, "Brain", (250, 250, 225), "12738006", "Brain", "head", False, ("brain",), 80),
)

_BY_KEY = {o.key: o for o in ORGANS}
_BY_LABEL = {o.label: o for o in ORGANS}
REGIONS = ("head", "thorax", "abdomen", "pelvis", "skeleton")
ANCHORS = tuple(o.key for o in ORGANS if o.anchor)


def organ(key: str) -> Organ:
    """The organ with this short name; unknown names raise with the nearest known names."""
    normalised = key.strip().lower().replace(" ", "_").replace("-", "_")
    if normalised in _BY_KEY:
        return _BY_KEY[normalised]
    near = difflib.get_close_matches(normalised, list(_BY_KEY), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(near)}?" if near else " Run `organseg organs` for the list."
    raise InputError(f"unknown organ name '{key}'.{hint}")


def organ_by_label(label: int) -> Organ:
    """The organ with this label value in the multi-label map."""
    return _BY_LABEL[label]


def parse_organs(spec: str | list[str] | tuple[str, ...] | None) -> list[Organ]:
    """Organs from a comma-separated string or a list of names; None or 'all' means every organ.

    Duplicates are dropped, catalogue order is kept.
    """
    if spec is None or spec == "all":
        return list(ORGANS)
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen = {organ(n).key for n in names if n.strip()}
    if not chosen:
        raise InputError("no organ named; pass e.g. --organs liver,spleen or --organs all")
    return [o for o in ORGANS if o.key in chosen]
