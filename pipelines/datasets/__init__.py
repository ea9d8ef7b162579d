"""Writing and scanning data sets, apart from loading them: ImageFolder scans and checks
(:mod:`~pipelines.datasets.folder`), ``.beton`` files for the FFCV backend
(:mod:`~pipelines.datasets.beton`; FFCV is imported only when one is written or read) and the
offline demo set (:mod:`~pipelines.datasets.demo`).
"""

from __future__ import annotations

from .beton import read_beton, write_beton
from .demo import write_demo_imagefolder
from .folder import scan_image_folder

__all__ = ["read_beton", "scan_image_folder", "write_beton", "write_demo_imagefolder"]
