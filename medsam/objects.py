"""Named objects segmented through a volume: one label map, each object's numbers and 3D scores.

The label map is shaped and oriented like ``Scan.data`` (0 background, object ``value`` elsewhere; a
later object wins where two overlap). An object is scored against the reference label volume (the
same grid as the image) by the reference values it was made for (``None``: any non-zero voxel):
3D DICE, NSD at 2 mm and HD95 in mm, with the scan's voxel spacing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .decoding import Prompt
from .metrics import volume_scores
from .scan import Scan
from .volume import Propagation, volume_ml


@dataclass
class VolumeObject:
    name: str
    value: int
    reference: tuple[int, ...] | None = None  # the reference label values it is scored against
    run: Propagation | None = None
    keys: dict[int, Prompt] = field(default_factory=dict)  # slice -> the user's prompt there (view pixels)
    key_axis: int | None = None  # the axis of those slices

    def mark(self, axis: int, index: int, prompt: Prompt) -> None:
        """Keep ``prompt`` as this object's prompt on slice ``index``; a prompt on another axis starts over."""
        if axis != self.key_axis:
            self.keys, self.key_axis = {}, axis
        self.keys[index] = prompt


@dataclass
class LabelMap:
    """The objects of one volume and their voxels."""

    labels: np.ndarray  # (X, Y, Z) uint16 in Scan.data's orientation
    objects: dict[int, VolumeObject] = field(default_factory=dict)
    current: int = 0

    @classmethod
    def empty(cls, scan: Scan) -> LabelMap:
        return cls(np.zeros(scan.data.shape, np.uint16))

    def add(self, name: str, reference: tuple[int, ...] | None = None) -> VolumeObject:
        """A new object (the next free value) that becomes the current one."""
        value = max(self.objects, default=0) + 1
        self.objects[value] = VolumeObject(name, value, reference)
        self.current = value
        return self.objects[value]

    def store(self, run: Propagation) -> VolumeObject:
        """The current object's voxels become those of ``run`` (a later re-propagation replaces them)."""
        obj = self.objects[self.current]
        self.labels[self.labels == obj.value] = 0
        self.labels[run.mask] = obj.value
        obj.run = run
        return obj

    def names(self) -> dict[int, str]:
        return {v: o.name for v, o in self.objects.items() if (self.labels == v).any()}

    def rows(self, scan: Scan, reference: np.ndarray | None) -> list[dict]:
        """One row per object with voxels: volume, slices and, against ``reference``, 3D scores."""
        out = []
        for value, obj in self.objects.items():
            mask = self.labels == value
            if not mask.any():
                continue
            row = {"object": obj.name, "volume_ml": round(volume_ml(mask, scan.spacing), 2),
                   "slices": len(obj.run.slices) if obj.run else int(np.moveaxis(mask, 2, 0).any((1, 2)).sum())}
            if reference is not None:
                ref = np.isin(reference, obj.reference) if obj.reference else reference > 0
                s = volume_scores(mask, ref, scan.spacing)
                row |= {"dice3d": round(s["dice3d"], 4), "nsd2mm": round(s["nsd"], 4),
                        "hd95_mm": round(s["hd95_mm"], 2) if np.isfinite(s["hd95_mm"]) else None}
            out.append(row)
        return out
