"""Data set folders in the TotalSegmentator and nnU-Net layouts, built in a tmp dir from the real CTs of
../shared/data, with the broken cases the import must skip."""
from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from organseg.catalogue import ORGANS

#: (subject, first slice, last slice + 1, split in meta.csv) of the 20-slice DICOM series.
TS_SUBJECTS = (("s01", 0, 7, "train"), ("s02", 7, 14, "val"), ("s03", 14, 20, "test"))
#: OpenKBP patients with both a spinal cord and an esophagus contour (cases.csv `labelled`).
KBP_TRAIN, KBP_TEST = ("pt_2", "pt_4", "pt_7"), "pt_13"
#: The slices kept of each OpenKBP CT (all four patients have both organs there): small, fast fixtures.
KBP_SLICES = slice(80, 90)
KBP_LABELS = {"SpinalCord": 1, "Esophagus": 2, "Larynx": 3, "Brainstem": 4, "Mandible": 5, "LeftParotid": 6,
              "RightParotid": 7}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time (to prove nothing was written)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def totalsegmentator_folder(root: Path, ct: sitk.Image, labels: sitk.Image, names: dict[int, str]) -> Path:
    """Subjects cut from the real DICOM series (slabs of slices), one file per structure as TotalSegmentator
    ships them (empty files for structures outside the slab), plus broken subjects:
    s01 listed twice, s04 without a folder, s05 with a liver file on another grid, s06 with an unknown split,
    s07 without lung_middle_lobe_right (so its lungs are incomplete)."""
    folder = root / "ts"
    structures = sorted({n for o in ORGANS for n in o.totalsegmentator_names} | {"trachea", "autochthon_left"})
    ids = {n: i for i, n in names.items()}
    rows = ["image_id;age;split"] + [f"{s};60;{split}" for s, _, _, split in TS_SUBJECTS]
    rows += ["s01;60;train", "s04;50;train", "s05;50;train", "s06;50;holdout", "s07;50;train"]
    slabs = {s: (a, b) for s, a, b, _ in TS_SUBJECTS} | {"s05": (0, 4), "s06": (4, 8), "s07": (8, 12)}
    for subject, (a, b) in slabs.items():
        seg = folder / subject / "segmentations"
        seg.mkdir(parents=True)
        sitk.WriteImage(ct[:, :, a:b], str(folder / subject / "ct.nii.gz"))
        slab = labels[:, :, a:b]
        for name in structures:
            if subject == "s07" and name == "lung_middle_lobe_right":
                continue
            mask = sitk.Cast(slab == ids[name], sitk.sitkUInt8)
            if subject == "s05" and name == "liver":
                mask = mask[:, :, 1:]
            sitk.WriteImage(mask, str(seg / f"{name}.nii.gz"))
    (folder / "meta.csv").write_text("\n".join(rows) + "\n")
    return folder


def _dataset_json(v1: bool, test: bool) -> dict:
    labels = {"0": "background"} | {str(i): n for n, i in KBP_LABELS.items()} if v1 \
        else {"background": 0} | KBP_LABELS
    meta = {"name": "OpenKBP-HN", "labels": labels, "numTraining": len(KBP_TRAIN), "file_ending": ".nii.gz"}
    meta["modality" if v1 else "channel_names"] = {"0": "CT"}
    if v1:
        meta["training"] = [{"image": f"./imagesTr/{c}_0000.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                            for c in KBP_TRAIN]
        meta["test"] = [f"./imagesTs/{KBP_TEST}_0000.nii.gz"] if test else []
    return meta


def kbp_case(kbp: Path, case: str) -> tuple[sitk.Image, sitk.Image]:
    """An OpenKBP patient's CT and label map, cut to `KBP_SLICES` (geometry kept exact)."""
    return tuple(sitk.ReadImage(str(kbp / "train" / case / f))[:, :, KBP_SLICES]  # type: ignore[return-value]
                 for f in ("ct.nii.gz", "labels.nii.gz"))


def nnunet_folder(root: Path, kbp: Path, v1: bool = False, broken: bool = False) -> Path:
    """OpenKBP patients in the nnU-Net raw layout (one labelled test case in imagesTs/labelsTs). `broken` adds
    a label without image (pt_90), a label map on another grid (pt_91), an empty label map (pt_92), an image
    that is not a CT (pt_93, intensities 0-1) and a test case repeating a training id (pt_2)."""
    folder = root / ("nnunet_v1" if v1 else "nnunet")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True)
    for case, part in [(c, "Tr") for c in KBP_TRAIN] + [(KBP_TEST, "Ts")]:
        ct, labels = kbp_case(kbp, case)
        sitk.WriteImage(ct, str(folder / f"images{part}" / f"{case}_0000.nii.gz"))
        sitk.WriteImage(labels, str(folder / f"labels{part}" / f"{case}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps(_dataset_json(v1, True), indent=1))
    if broken:
        ct, labels = kbp_case(kbp, "pt_2")
        sitk.WriteImage(labels, str(folder / "labelsTr" / "pt_90.nii.gz"))
        sitk.WriteImage(ct, str(folder / "imagesTr" / "pt_91_0000.nii.gz"))
        sitk.WriteImage(labels[:, :, 1:], str(folder / "labelsTr" / "pt_91.nii.gz"))
        sitk.WriteImage(ct, str(folder / "imagesTr" / "pt_92_0000.nii.gz"))
        sitk.WriteImage(labels * 0, str(folder / "labelsTr" / "pt_92.nii.gz"))
        scaled = sitk.Cast((sitk.Cast(ct, sitk.sitkFloat32) + 1024.0) / 4096.0, sitk.sitkFloat32)
        sitk.WriteImage(scaled, str(folder / "imagesTr" / "pt_93_0000.nii.gz"))
        sitk.WriteImage(labels, str(folder / "labelsTr" / "pt_93.nii.gz"))
        sitk.WriteImage(ct, str(folder / "imagesTs" / "pt_2_0000.nii.gz"))
        sitk.WriteImage(labels, str(folder / "labelsTs" / "pt_2.nii.gz"))
    return folder
