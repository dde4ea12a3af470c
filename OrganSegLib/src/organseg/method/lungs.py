"""Classical lung labeller: air inside the body, airways removed, gas excluded, right and left lung apart.

Why a labeller: lung parenchyma is air in tissue, a contrast of about 800 HU that a threshold finds exactly,
on any field of view, in well under a second per 100 slices; a network trained on its output could at best
imitate it (see the lungs model card). Steps, on a canonical (S, P, L) HU volume (axis 0 inferior -> superior,
axis 2 toward the patient's left):

1. air: voxels below `air_hu` inside the body contour (`organseg.method.body`), so outside air and the table are out;
   where the field of view cuts the chest wall, in-plane air regions touching the image edge that are not pure
   air (see step 3) are lung the contour could not enclose, and are kept.
2. airways: followed slice by slice from the top down. An in-plane air region is airway when it is small
   (below `airway_max_mm2`) and either continues an airway region of the slice above or starts there as pure
   air (mean below `pure_air_hu`) near the midline: nose, pharynx, larynx, trachea, oesophageal air and main
   bronchi. Where an airway touches a lung in-plane its footprint is carried down for `airway_carry_mm`, so
   the trachea is not handed to the lung it brushes; a bronchus that enters the lung becomes lung after that.
3. gas: 3D components (6-connected) of what is left are lung when at most `max_pure_air_fraction` of their
   voxels are pure air (below `pure_air_hu`) and at least `min_aerated_fraction` are aerated (below
   `aerated_hu`): parenchyma at CT resolution is air mixed with vessels and septa (about -850 HU); bowel and
   stomach gas, sinuses and ear canals are pure air; slits along the skin or table are partial-volume rims.
   Pieces below `min_piece_ml`, below `min_piece_fraction` of the largest lung piece, or more than
   `max_piece_gap_mm` above or below it (bowel content mottled with gas) are dropped; a largest piece below
   `min_lung_ml` means no lung (mixed air in the nose, bowel). Where every lung piece lies on one side, the
   largest pure-air component on the other side is the other lung if it is large and level with the first
   (a lung that reads as pure air: emphysema, or OpenKBP CTs where a lung was stored as -1024).
4. right/left: a component on both sides of the body's midline (lungs touching at the anterior junction) is cut
   per slice at the column, near the midline, with the fewest lung voxels; each piece goes to the side of its
   centroid.
5. holes (vessels, airways, nodules enclosed in a slice) are filled per lung, in-plane and in 3D.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from organseg.masks import bounding_box
from organseg.method.body import body_mask

RIGHT, LEFT = 1, 2  #: label values of `label_lungs`
_IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                      [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=bool)
_CHUNK = 16  #: slices labelled together where the whole image's air is labelled (bounds memory)


@dataclass(frozen=True)
class LungParameters:
    """The labeller's thresholds; a lungs model package stores them (see `organseg.labeller_package`)."""

    air_hu: float = -400.0  #: below: air or aerated lung (parenchyma about -850, soft tissue above -100)
    pure_air_hu: float = -950.0  #: below: air without tissue (gas, airway lumen)
    airway_max_mm2: float = 700.0  #: largest in-plane airway section (adult trachea about 250-400 mm2)
    midline_mm: float = 30.0  #: how far from the body's midline a new airway may start
    airway_carry_mm: float = 10.0  #: how far an airway footprint is carried through a lung it touches
    aerated_hu: float = -700.0  #: below: aerated lung rather than the partial-volume rim of a tissue edge
    max_pure_air_fraction: float = 0.25  #: components with more pure air are gas, not lung
    min_aerated_fraction: float = 0.5  #: components with fewer aerated voxels are rims and slits, not lung
    min_piece_ml: float = 1.0  #: smaller air components are not lung ...
    min_piece_fraction: float = 0.02  #: ... nor those below this fraction of the largest lung component ...
    max_piece_gap_mm: float = 30.0  #: ... nor those further than this above or below it (bowel content)
    min_lung_ml: float = 10.0  #: a largest piece below this is nasal or bowel air, and no lung is reported
    min_dark_lung_fraction: float = 0.25  #: a pure-air component this large beside a one-sided lung ...
    min_dark_lung_overlap: float = 0.5  #: ... lying this much within its axial range is the other lung

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LungParameters":
        """Parameters from a stored dict; unknown keys are refused so a newer package is not misread."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown lung labeller parameters: {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in values.items()})


def label_lungs(volume: np.ndarray, spacing: tuple[float, float, float],
                params: LungParameters = LungParameters(), body: np.ndarray | None = None) -> np.ndarray:
    """Right (`RIGHT`) and left (`LEFT`) lung labels of a canonical (S, P, L) HU volume, uint8, same shape.

    `spacing` is the voxel size in mm along the canonical axes (S, P, L). `body`: the volume's `body_mask`
    where the caller has it (the segmenter computes it once per CT; it is a third of the labeller's time).
    """
    body = body_mask(volume) if body is None else body
    midline = _midline(body)
    air = volume < params.air_hu
    air &= body | _cut_by_field_of_view(air, volume, body, params)
    del body
    out = np.zeros(volume.shape, dtype=np.uint8)
    if not air.any():
        return out
    lo, hi = bounding_box(air)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    air, ct, midline = air[box], volume[box], midline[box[0]] - lo[2]
    air &= ~_airways(air, ct, midline, spacing, params)
    sides = _split_sides(_lung_components(air, ct, midline, spacing, params), midline, spacing, params)
    for side in (RIGHT, LEFT):
        sides[_fill_holes(sides == side) & (sides == 0)] = side
    out[box] = sides
    return out


def _cut_by_field_of_view(air: np.ndarray, ct: np.ndarray, body: np.ndarray, params: LungParameters) -> np.ndarray:
    """Lung the body contour cannot enclose because the field of view cuts the chest wall: in-plane air regions
    that reach the image's right or left edge between body tissue on that edge (not the table's foam under the
    body) and are not pure air (outside air is)."""
    out = np.zeros(air.shape, dtype=bool)
    sides = [body[:, :, column] for column in (0, -1)]  # (S, P) body on the image's right and left edge
    walled = []  # per edge: rows strictly between the first and last body row on it
    for side in sides:
        rows = np.arange(side.shape[1])
        first = np.where(side.any(axis=1), side.argmax(axis=1), side.shape[1])
        last = side.shape[1] - 1 - side[:, ::-1].argmax(axis=1)
        walled.append((rows > first[:, None]) & (rows < last[:, None]))
    for start in range(0, air.shape[0], _CHUNK):
        part = slice(start, start + _CHUNK)
        chunk = air[part]
        aerated = chunk & (ct[part] >= params.pure_air_hu)  # only where such air meets a walled edge is work due
        if not ((aerated[:, :, 0] & walled[0][part]).any() or (aerated[:, :, -1] & walled[1][part]).any()):
            continue
        labels, n = ndimage.label(chunk, structure=_IN_PLANE)
        edge = np.zeros(n + 1, dtype=bool)
        edge[labels[:, :, 0][walled[0][part]]] = True
        edge[labels[:, :, -1][walled[1][part]]] = True
        ids = labels[chunk]
        count = np.maximum(np.bincount(ids, minlength=n + 1), 1)
        edge &= np.bincount(ids, weights=ct[part][chunk] < params.pure_air_hu, minlength=n + 1) <= \
            params.max_pure_air_fraction * count
        edge[0] = False
        out[part] = edge[labels]
    return out


def _midline(body: np.ndarray) -> np.ndarray:
    """Per slice, the body's centre column (left-right). Where the field of view cuts the body at the image's
    side that centre is wrong: such slices, and those without body, take the median of the others."""
    cols = body.sum(axis=1).astype(np.float64)  # (S, L)
    weight = cols.sum(axis=1)
    centre = (cols * np.arange(body.shape[2])).sum(axis=1) / np.maximum(weight, 1)
    whole = (weight > 0) & (cols[:, 0] == 0) & (cols[:, -1] == 0)
    centre[~whole] = np.median(centre[whole]) if whole.any() else (body.shape[2] - 1) / 2
    return centre


def _airways(air: np.ndarray, ct: np.ndarray, midline: np.ndarray, spacing: tuple[float, float, float],
             params: LungParameters) -> np.ndarray:
    """Airway voxels, tracked from the top slice down (module docstring, step 2); `midline`: column per slice."""
    labels, n = ndimage.label(air, structure=_IN_PLANE)  # in-plane regions, numbered slice after slice
    ids = labels[air]
    count = np.maximum(np.bincount(ids, minlength=n + 1), 1)
    small = count * spacing[1] * spacing[2] <= params.airway_max_mm2
    has_pure_air = np.bincount(ids, weights=ct[air] < params.pure_air_hu, minlength=n + 1) > 0
    z_of, _, col_of = np.nonzero(air)
    col = np.bincount(ids, weights=col_of, minlength=n + 1) / count
    near_midline = np.abs(col - midline[np.minimum(np.bincount(ids, weights=z_of, minlength=n + 1) / count,
                                                   len(midline) - 1).astype(int)]) * spacing[2] <= params.midline_mm
    starts = small & has_pure_air & near_midline
    del ids, z_of, col_of
    carry_slices = max(1, int(round(params.airway_carry_mm / spacing[0])))
    airway = np.zeros(air.shape, dtype=bool)
    is_airway = np.zeros(n + 1, dtype=bool)
    above = np.zeros(air.shape[1:], dtype=bool)
    carried_for = np.zeros(air.shape[1:], dtype=np.int32)  # slices a footprint has been carried through a lung
    for z in range(air.shape[0] - 1, -1, -1):
        here = labels[z]
        is_airway[here[above]] = True  # continues an airway of the slice above (ids are unique to a slice)
        is_airway[0] = False
        current = (is_airway[here] & small[here]) | starts[here]
        # A footprint that ran into a large (lung) region is carried down for a few slices.
        carry = above & (here > 0) & ~current & (carried_for < carry_slices)
        carried_for = np.where(carry, carried_for + 1, 0)
        airway[z] = above = current | carry
    return airway


def _lung_components(air: np.ndarray, ct: np.ndarray, midline: np.ndarray, spacing: tuple[float, float, float],
                     params: LungParameters) -> np.ndarray:
    """Air components that are lung (module docstring, step 3)."""
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros(air.shape, dtype=bool)
    ids, hu = labels[air], ct[air]
    count = np.maximum(np.bincount(ids, minlength=n + 1), 1)
    pure = np.bincount(ids, weights=hu < params.pure_air_hu, minlength=n + 1) / count
    aerated = np.bincount(ids, weights=hu < params.aerated_hu, minlength=n + 1) / count
    z_of, _, col_of = np.nonzero(air)
    right = np.bincount(ids, weights=col_of < midline[z_of], minlength=n + 1) > count / 2
    del ids, hu, z_of, col_of
    big = count * (float(np.prod(spacing)) / 1000.0) >= params.min_piece_ml
    big[0] = False
    keep = big & (pure <= params.max_pure_air_fraction) & (aerated >= params.min_aerated_fraction)
    largest = int(np.argmax(np.where(keep, count, 0)))
    if not keep.any() or count[largest] * float(np.prod(spacing)) / 1000.0 < params.min_lung_ml:
        return np.zeros(air.shape, dtype=bool)
    keep &= count >= params.min_piece_fraction * count[largest]
    boxes = [box[0] for box in ndimage.find_objects(labels)]
    main, reach = boxes[largest - 1], params.max_piece_gap_mm / spacing[0]
    for index in np.flatnonzero(keep):
        keep[index] = boxes[index - 1].start - main.stop < reach and main.start - boxes[index - 1].stop < reach
    weak = np.bincount(right[keep] != right[largest], weights=count[keep], minlength=2)
    if weak[1] < params.min_dark_lung_fraction * weak[0]:  # one lung: is the other there, reading as pure air?
        other = big & ~keep & (right != right[largest])
        for index in np.flatnonzero(other)[np.argsort(-count[other])][:1]:
            z = boxes[index - 1]
            overlap = min(z.stop, main.stop) - max(z.start, main.start)
            keep[index] = overlap >= params.min_dark_lung_overlap * (z.stop - z.start) and \
                count[index] >= params.min_dark_lung_fraction * count[largest]
    return keep[labels]


def _split_sides(lungs: np.ndarray, midline: np.ndarray, spacing: tuple[float, float, float],
                 params: LungParameters) -> np.ndarray:
    """RIGHT/LEFT labels: a component goes to the side holding most of it; one that lies on both sides
    (lungs touching at a junction line) is split slice by slice (module docstring, step 4)."""
    labels, _ = ndimage.label(lungs)
    right_of_mid = np.arange(lungs.shape[2])[None, :] < midline[:, None]  # (S, L): right = lower column
    out = np.zeros(lungs.shape, dtype=np.uint8)
    for index, box in enumerate(ndimage.find_objects(labels), 1):
        part = labels[box] == index
        right = np.broadcast_to(right_of_mid[box[0], None, box[2]], part.shape)
        on_right, total = np.count_nonzero(part & right), np.count_nonzero(part)
        if min(on_right, total - on_right) <= 0.1 * total:
            out[box][part] = RIGHT if on_right > total / 2 else LEFT
            continue
        for z in range(part.shape[0]):
            out[box][z][part[z]] = _split_slice(part[z], right[z, 0], midline[box[0].start + z] - box[2].start,
                                                 params.midline_mm / spacing[2])[part[z]]
    return out


def _split_slice(part: np.ndarray, right: np.ndarray, midline: float, reach: float) -> np.ndarray:
    """One slice of a component on both sides: each in-plane piece goes to its side; a piece on both sides
    is cut at the column near the midline with the fewest lung voxels (the junction line)."""
    pieces, _ = ndimage.label(part)
    out = np.zeros(part.shape, dtype=np.uint8)
    for index, box in enumerate(ndimage.find_objects(pieces), 1):
        piece = pieces[box] == index
        cols = np.arange(box[1].start, box[1].stop)
        on_right = np.count_nonzero(piece[:, right[cols]])
        total = np.count_nonzero(piece)
        if min(on_right, total - on_right) <= 0.1 * total:
            out[box][piece] = RIGHT if on_right > total / 2 else LEFT
            continue
        lo, hi = max(cols[0], int(midline - reach)), min(cols[-1], int(midline + reach))
        counts = piece.sum(axis=0)[lo - cols[0]:hi - cols[0] + 1]
        cut = lo + int(np.argmin(counts)) if counts.size else int(round(midline))
        out[box][piece] = np.where(cols < cut, RIGHT, LEFT)[None, :].repeat(piece.shape[0], 0)[piece]
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Holes filled in-plane (vessels cut across) and then in 3D.

    Works in the mask's bounding box padded by one background voxel: the background region holding the
    padding's corner is the outside (per slice for the in-plane pass), everything else is a hole. The same
    result as ndimage.binary_fill_holes, several times faster.
    """
    out = mask.copy()
    if not mask.any():
        return out
    lo, hi = bounding_box(mask)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    padded = np.pad(mask[box], 1)
    labels, _ = ndimage.label(~padded, structure=_IN_PLANE)
    filled = labels != labels[:, :1, :1]
    labels, _ = ndimage.label(~filled)
    out[box] = (labels != labels[0, 0, 0])[1:-1, 1:-1, 1:-1]
    return out
