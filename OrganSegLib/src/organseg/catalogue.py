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
    label: int  #: value in the multi-label map (1..28)
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
    def volume_ml(self) -> tuple[float, float] | None:
        """Plausible adult volume range in mL (VOLUMES_ML); None where volume is not checked."""
        return VOLUMES_ML.get(self.key)

    @property
    def median_hu(self) -> tuple[float, float]:
        """Plausible range of the median HU of the organ's voxels (MEDIAN_HU, else soft tissue)."""
        return MEDIAN_HU.get(self.key, HU_SOFT)

    @property
    def side(self) -> str | None:
        """'right' or 'left': the patient side holding the organ's centre, for lateral organs (SIDES)."""
        return SIDES.get(self.key)

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

#: Plausible median HU of an organ's voxels, unenhanced to contrast-enhanced CT, by tissue (organseg.results.plausibility);
#: set from tissue values and checked on the real CTs (Testing/benchmarks/PLAUSIBILITY.md).
HU_SOFT = (-40.0, 200.0)  #: parenchyma: fat is about -100, cancellous bone 200 and more
HU_FATTY = (-150.0, 200.0)  #: small, thin or fat-infiltrated organs (adrenals, pancreas, thymus, esophagus)
HU_KIDNEY = (-40.0, 400.0)  #: cortex and medulla enhance to about 200-300 HU; excreted contrast in the pelvis
HU_BLOOD = (-20.0, 600.0)  #: vessels and heart chambers: blood 40 HU, up to about 500 HU in arterial phase
HU_LUNG = (-1000.0, -300.0)  #: aerated lung about -850 HU; dense fibrosis or oedema still below -300
HU_BONE = (80.0, 1800.0)  #: cancellous (osteoporotic 100) to cortical bone
HU_HOLLOW = (-850.0, 1000.0)  #: gas, fluid, food or oral contrast; only air-filled (about -1000) is implausible
HU_BLADDER = (-40.0, 2000.0)  #: urine about 10 HU, excreted contrast up to about 2000

#: Plausible adult volumes in mL: 0.4 x the published mean of women to 2.5 x that of men, wide enough for normal
#: variation and common disease, narrow enough to catch a mask of the wrong structure. Sources:
#: [G] Geraghty EM, Boone JM et al., Normal organ volume assessment from abdominal CT, Abdom Imaging 2004;29:482-90
#:     (149 adults, manual CT volumetry; means women/men: liver 1411/1710, spleen 180/238, kidney 157/193 each,
#:     pancreas 64/87 mL).
#: [I] ICRP Publication 89, Basic anatomical and physiological data for use in radiological protection: reference
#:     values, Ann ICRP 2002;32(3-4), reference woman/man masses in g, taken as mL (soft tissue 1.0-1.06 g/mL).
#: [T] Total lung capacity of healthy adults, women/men about 4.2/6.0 L (e.g. West, Respiratory Physiology).
#: Organs whose volume depends on filling or on the field of view more than on the person (bones, bowel, bladder,
#: vessels, spinal cord, femur heads), or that clinics often contour in part only (esophagus), have no range.
VOLUMES_ML: dict[str, tuple[float, float]] = {
    "liver": (560, 4300),  # [G] 1411/1710
    "heart": (250, 2100),  # [I] heart with blood 620/840
    "pancreas": (26, 220),  # [G] 64/87
    "kidneys": (125, 970),  # [G] 2 x 157 / 2 x 193
    "spleen": (72, 600),  # [G] 180/238
    "lungs": (1700, 15000),  # [T] 4200/6000
    "gallbladder": (22, 170),  # [I] wall and content 56/68
    "adrenal_glands": (5, 35),  # [I] 2 x 6.5 / 2 x 7
    "stomach": (56, 1000),  # [I] wall 140 (empty, woman) / wall and content 400 (man)
    "thymus": (8, 63),  # [I] 20/25
    "eyes": (6, 38),  # [I] 2 x 7.5 / 2 x 7.5
    "brain": (520, 3600),  # [I] 1300/1450
    # Head-and-neck organs at risk: from the manual contours of OpenKBP's 170 training patients (median, 5th-95th
    # percentile), widened as above; clinics contour the larynx very differently (0.5-76 mL there).
    "brainstem": (8, 60),  # 25 mL (10-35)
    "parotid_left": (5, 90),  # 25 mL (13-45)
    "parotid_right": (5, 90),  # 26 mL (14-44)
    "mandible": (25, 150),  # 63 mL (39-86) of bone
    "larynx": (3, 100),  # 21 mL (3-53)
}
MEDIAN_HU: dict[str, tuple[float, float]] = {
    "heart": HU_BLOOD, "aorta": HU_BLOOD, "inferior_vena_cava": HU_BLOOD, "kidneys": HU_KIDNEY,
    "pancreas": HU_FATTY, "adrenal_glands": HU_FATTY, "thymus": HU_FATTY, "esophagus": HU_FATTY,
    "lungs": HU_LUNG, "bones": HU_BONE, "femur_heads": HU_BONE, "urinary_bladder": HU_BLADDER,
    "stomach": HU_HOLLOW, "colon": HU_HOLLOW, "rectum": HU_HOLLOW, "small_intestine": HU_HOLLOW,
    "gi_tract": HU_HOLLOW, "parotid_left": HU_FATTY, "parotid_right": HU_FATTY, "mandible": HU_BONE,
    "larynx": HU_HOLLOW,  # contours take in the airway: medians -352 to 61 HU on OpenKBP's training patients
}
#: Lateral organs: the side of the body midline that holds their centre of mass in normal anatomy.
SIDES = {"liver": "right", "gallbladder": "right", "spleen": "left", "stomach": "left", "parotid_left": "left",
         "parotid_right": "right"}

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
    # Head-and-neck organs at risk (radiotherapy), after the paper's 23; trained on OpenKBP's manual contours.
    # Smallest extents: below the 5th percentile of those contours (brainstem 33, parotids 35, mandible 44 mm).
    Organ("brainstem", 24, "Brainstem", (119, 159, 176), "15926001", "Brainstem", "head", False, (), 25),
    Organ("parotid_left", 25, "Left parotid gland", (255, 182, 193), "45289007", "Parotid gland", "head", False,
          (), 30),
    Organ("parotid_right", 26, "Right parotid gland", (219, 112, 147), "45289007", "Parotid gland", "head", False,
          (), 30),
    Organ("mandible", 27, "Mandible", (255, 250, 205), "91609006", "Mandible", "head", False, (), 35),
    Organ("larynx", 28, "Larynx", (150, 200, 240), "4596009", "Larynx", "head", False, (), 20),
)

_BY_KEY = {o.key: o for o in ORGANS}
REGIONS = ("head", "thorax", "abdomen", "pelvis", "skeleton")


def organ(key: str) -> Organ:
    """The organ with this short name; unknown names raise with the nearest known names."""
    normalised = key.strip().lower().replace(" ", "_").replace("-", "_")
    if normalised in _BY_KEY:
        return _BY_KEY[normalised]
    near = difflib.get_close_matches(normalised, list(_BY_KEY), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(near)}?" if near else " Run `organseg organs` for the list."
    raise InputError(f"unknown organ name '{key}'.{hint}")


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
