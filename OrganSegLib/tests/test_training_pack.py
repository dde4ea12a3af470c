"""Packs on the real OpenKBP CTs: a case packed and read back gives the slice pairs of the original files, with
what training does not use left out; a pack made for other organs or margins, or left half-written, is refused,
and a rerun only finishes a pack."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from organseg.catalogue import organ
from organseg.errors import InputError
from organseg.training.dataset import load_case, pack_dataset, read_dataset
from organseg.training.pack import INDEX, load_pack

CORD, ESOPHAGUS = organ("spinal_cord"), organ("esophagus")


@pytest.fixture(scope="module")
def packed(openkbp_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """pt_2 (cord and esophagus) to train, pt_1 (cord only) to select, pt_7 held out: packed for both organs."""
    root = tmp_path_factory.mktemp("pack")
    lines = ["image,mask,label,source,case,split,labelled"]
    for case, split, labelled in (("pt_2", "train", "spinal_cord+esophagus"), ("pt_1", "validation", "spinal_cord"),
                                  ("pt_7", "test", "spinal_cord+esophagus")):
        folder = openkbp_dir / "train" / case
        lines.append(f"{folder / 'ct.nii.gz'},{folder / 'labels.nii.gz'},1+2,openkbp,{case},{split},{labelled}")
    data = root / "dataset.csv"
    data.write_text("\n".join(lines) + "\n")
    pack_dataset(data, [CORD, ESOPHAGUS], root / "pack", margin=30, margin_below=0)
    return data, root / "pack"


def test_a_packed_case_gives_the_slice_pairs_of_the_original_files(packed, capsys):
    data, pack = packed
    assert sorted(p.name for p in pack.iterdir()) == [INDEX, "pt_1.npz", "pt_2.npz"]  # never the held-out case
    specs = {s.name: s for s in read_dataset(data)}
    for target in (CORD, ESOPHAGUS):
        cases, (name, _) = load_pack(pack, target, 30, 0)
        assert name == "dataset.csv"
        assert [c.spec.name for c in cases] == (["pt_2", "pt_1"] if target is CORD else ["pt_2"])
        for case in cases:
            original = load_case(specs[case.spec.name], target, 30, 0)
            assert np.array_equal(case.z, original.z) and len(case.z) > 20
            assert np.array_equal(case.codes, original.codes)
            assert np.array_equal(case.targets, original.targets)
    assert "pt_1: esophagus was not contoured" in capsys.readouterr().err
    # the pt_2 CT (128 slices) keeps only the slices the cord or the esophagus trains on, at under 0.3 MB
    assert (pack / "pt_2.npz").stat().st_size < 300_000


def test_a_pack_for_other_organs_or_margins_or_half_written_is_refused(packed, tmp_path: Path):
    data, pack = packed
    packed_at = (pack / "pt_2.npz").stat().st_mtime_ns
    pack_dataset(data, [CORD, ESOPHAGUS], pack, margin=30, margin_below=0)  # a rerun finishes a pack
    assert (pack / "pt_2.npz").stat().st_mtime_ns == packed_at
    with pytest.raises(InputError, match="pt_2.npz: packed from another dataset row, for other organs or with "
                                         "other margins; pack into a new folder"):
        pack_dataset(data, [CORD], pack, margin=30, margin_below=0)
    with pytest.raises(InputError, match="packed for spinal_cord, esophagus, not liver"):
        load_pack(pack, organ("liver"), 30, 0)
    with pytest.raises(InputError, match="packed with margin 30, below 0"):
        load_pack(pack, CORD, 30, None)
    half = tmp_path / "half"
    half.mkdir()
    (half / "pt_2.npz").write_bytes((pack / "pt_2.npz").read_bytes())
    with pytest.raises(InputError, match=f"not a complete pack \\(no {INDEX}\\)"):
        load_pack(half, CORD, 30, 0)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / INDEX).write_text(json.dumps(json.loads((pack / INDEX).read_text())))
    (broken / "pt_2.npz").write_bytes((pack / "pt_2.npz").read_bytes()[:1000])
    with pytest.raises(InputError, match="pt_2.npz: not a readable OrganSeg pack case"):
        load_pack(broken, CORD, 30, 0)
