"""Whether segmenting a CT fits in memory: its working set (canonical copy, masks, labels, network inputs)
against what the machine has free, checked before any work so a big CT is refused, not killed half-way.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from organseg.errors import InputError
from organseg.method.preprocess import INPUT_HEIGHT, INPUT_WIDTH

#: Working memory per CT voxel besides the CT's canonical copy (masks, labels). Measured peak at 512x512x800
#: int16: 2.17 GB, 10.8 bytes per voxel with the image, its 2-byte copy and the process itself
#: (Testing/benchmarks/BENCHMARK.md).
WORK_BYTES_PER_VOXEL = 7


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_needed(size: tuple[int, ...], pixel_bytes: int) -> int:
    """Bytes segmenting a CT of this size and stored pixel type needs: a canonical copy, masks, labels and the
    network inputs. Also what a cluster task declares, from the CT's header."""
    voxels = int(np.prod(size, dtype=np.int64))
    return voxels * (pixel_bytes + WORK_BYTES_PER_VOXEL) + max(size) * INPUT_HEIGHT * INPUT_WIDTH * 4


def check_memory(image: sitk.Image, source: str | os.PathLike) -> None:
    """Refuse a CT whose working set would not fit."""
    needed = memory_needed(image.GetSize(), image.GetSizeOfPixelComponent())
    available = available_memory()
    if available is not None and needed > available:
        raise InputError(f"{source}: segmenting this {'x'.join(map(str, image.GetSize()))} CT needs about "
                         f"{needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB are available; "
                         "crop or downsample the CT, or free memory")
