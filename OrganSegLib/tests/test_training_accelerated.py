"""The GPU training path's parts, run on the CPU (no GPU here): the step class (float16 autocast and gradient
scaling on CUDA, a plain float32 step elsewhere) and the DataLoader batch stream with workers."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from organseg.catalogue import organ
from organseg.ct.labelmaps import organ_label_ids, read_label_names, select_labels
from organseg.method.network import ResUNet2D
from organseg.training.accelerated import MixedPrecisionStep, batch_stream
from organseg.training.augment import Augmentation
from organseg.training.cases import decode
from organseg.training.config import FitConfig
from organseg.training.loop import SliceSet, Trainer, dice_bce_loss


def _liver_slices(organ_slices, dicom_ct, ts_labels, data_dir):
    """Every third slice, cut to 96 x 96 pixels around the liver (small: these tests check plumbing)."""
    names = read_label_names(data_dir / "labels_totalsegmentator_v2.json")
    pairs = organ_slices(dicom_ct, select_labels(ts_labels, organ_label_ids(organ("liver"), names)))
    rows, cols = np.nonzero(pairs.targets.any(axis=0))
    r, c = max(int(rows.mean()) - 48, 0), max(int(cols.mean()) - 48, 0)
    return (np.ascontiguousarray(a[::3, r:r + 96, c:c + 96]) for a in (pairs.inputs, pairs.targets))


def test_mixed_precision_steps_lower_the_loss_on_real_slices(organ_slices, dicom_ct, ts_labels, data_dir):
    x, y = (torch.from_numpy(a[:4, None].copy()) for a in _liver_slices(organ_slices, dicom_ct, ts_labels, data_dir))
    torch.manual_seed(0)
    net = ResUNet2D()
    step = MixedPrecisionStep(net, torch.optim.Adam(net.parameters(), lr=1e-3), "cpu", dice_bce_loss)
    losses = [step(x, y) for _ in range(6)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not step.mixed and not step.scaler.is_enabled()  # the CPU path is not mixed precision


def test_batch_stream_with_workers_is_seeded_per_worker(organ_slices, dicom_ct, ts_labels, data_dir):
    inputs, targets = _liver_slices(organ_slices, dicom_ct, ts_labels, data_dir)

    def sample(rng: np.random.Generator):
        idx = rng.choice(len(inputs), 2)
        return torch.from_numpy(inputs[idx, None]), torch.from_numpy(targets[idx, None])

    first = [x for x, _ in (next(s) for s in [batch_stream(sample, [0, 5], 2, False)] * 4)]
    again = [x for x, _ in (next(s) for s in [batch_stream(sample, [0, 5], 2, False)] * 4)]
    assert first[0].shape == (2, 1, *inputs.shape[1:])
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # same seed and step: the same batches
    assert not torch.equal(first[0], first[1]) or not torch.equal(first[1], first[2])  # workers differ


def test_trainer_with_a_batch_worker_trains_and_augments_in_the_main_process(organ_slices, dicom_ct, ts_labels,
                                                                                 data_dir, tmp_path):
    """The GPU's batch path on the CPU: crops cut by a DataLoader process, augmented by the trainer (its
    generator, checkpointed), steps counted and the checkpoint written; the loss falls on real slices."""
    inputs, targets = _liver_slices(organ_slices, dicom_ct, ts_labels, data_dir)
    codes = np.round(inputs * 239).astype(np.uint8)
    data = SliceSet(codes, targets > 0.5, decode)
    torch.manual_seed(0)
    calls = []

    def augment(x, y, rng):
        calls.append(x.shape[0])
        return Augmentation()(x, y, rng)
    trainer = Trainer(ResUNet2D((4, 8)), FitConfig(max_steps=6, batch_size=2, val_every=3, patch=(64, 64)), augment,
                      tmp_path / "checkpoint.pt", {"test": 1}, workers=1)
    state = trainer.fit(data, data, progress=False)
    assert state.step == 6 and calls == [2] * 6  # every batch augmented here, none in the worker
    assert all(np.isfinite(state.losses)) and (tmp_path / "checkpoint.pt").is_file()
    assert np.mean(state.losses[-2:]) < np.mean(state.losses[:2])
