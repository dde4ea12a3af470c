"""The organ catalogue: complete, consistent, and helpful on unknown names."""
import pytest

from organseg.catalogue import ORGANS, REGIONS, organ, parse_organs
from organseg.errors import InputError


def test_catalogue_has_the_23_organs_of_the_method_and_5_head_and_neck_organs_with_unique_names_labels_colours():
    assert len(ORGANS) == 28
    assert len({o.key for o in ORGANS}) == 28
    assert sorted(o.label for o in ORGANS) == list(range(1, 29))
    assert len({o.colour for o in ORGANS}) == 28
    assert all(o.region in REGIONS for o in ORGANS)
    assert all(o.snomed_code.isdigit() and o.snomed_meaning for o in ORGANS)


def test_the_six_anchor_organs():
    anchors = {o.key for o in ORGANS if o.anchor}
    assert anchors == {"liver", "spleen", "lungs", "femur_heads", "urinary_bladder", "kidneys"}


def test_names_are_normalised():
    assert organ("Urinary Bladder").key == "urinary_bladder"
    assert organ("femur-heads").key == "femur_heads"


def test_unknown_organ_name_suggests_the_nearest_names():
    with pytest.raises(InputError, match="unknown organ name 'livr'.*Did you mean: liver"):
        organ("livr")


def test_parse_organs_keeps_catalogue_order_and_drops_duplicates():
    assert [o.key for o in parse_organs("spleen,liver,spleen")] == ["liver", "spleen"]
    assert len(parse_organs("all")) == 28
    with pytest.raises(InputError, match="no organ named"):
        parse_organs(" , ")


def test_smallest_extents_are_plausible_and_order_the_organs_sensibly():
    extent = {o.key: o.min_extent_mm for o in ORGANS}
    assert all(10 <= e <= 300 for e in extent.values())
    assert extent["eyes"] < extent["kidneys"] < extent["liver"] < extent["lungs"] < extent["spinal_cord"]
    assert max(extent[k] for k in ("eyes", "adrenal_glands", "thymus")) <= 20


def test_the_head_and_neck_organs_follow_the_paper_s_23_with_their_sides_and_tissues():
    new = {o.key: o for o in ORGANS if o.label > 23}
    assert [o.label for o in new.values()] == [24, 25, 26, 27, 28]
    assert set(new) == {"brainstem", "parotid_left", "parotid_right", "mandible", "larynx"}
    assert all(o.region == "head" and not o.anchor and o.volume_ml is not None for o in new.values())
    assert (new["parotid_left"].side, new["parotid_right"].side, new["brainstem"].side) == ("left", "right", None)
    low, high = new["mandible"].median_hu
    assert low >= 80 and high > 1000, "the mandible is bone"
    assert new["parotid_left"].snomed_code == new["parotid_right"].snomed_code == "45289007"


def test_every_exported_structure_has_a_unique_tg263_name_of_at_most_16_characters():
    from organseg.catalogue import PAIRED, SIDE_WORDS
    parts = [p for o in ORGANS for p in o.parts()]
    names = [p.tg263 for p in parts]
    assert len(set(names)) == len(names) and all(0 < len(n) <= 16 and " " not in n for n in names), names
    assert len({p.key for p in parts}) == len(parts) and len({p.display_name for p in parts}) == len(parts)
    for key in PAIRED:  # a pair is its sides: <Name>_R on the right, <Name>_L on the left, each its own shade
        right, left = organ(key).parts()
        assert (right.side, left.side) == tuple(SIDE_WORDS) and right.tg263.endswith("_R") and left.tg263.endswith("_L")
        assert len({right.colour, left.colour, organ(key).colour}) == 3
    assert organ("spinal_cord").tg263 == "SpinalCord" and organ("mandible").tg263 == "Bone_Mandible"
