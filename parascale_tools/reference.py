"""The bundled reference track (RealEstate10K, CC BY 4.0; shipped in ``parascale_blender/data/``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REFERENCE_FILE = "re10k_0bf152ef84195293.txt"
REFERENCE_SUBJECT_DISTANCE = 2.5  # RealEstate10K SLAM units: the room's walls a few units away


def bundled_reference_path() -> Path:
    return Path(str(resources.files("parascale_blender") / "data" / REFERENCE_FILE))
