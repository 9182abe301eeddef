"""Grad-CAM maps kept on disk beside the predictions, so showing one computes nothing.

A map is stored at feature resolution (the (fused) map after ReLU, e.g. 4x4 floats for the
shipped models), keyed by the model's weights sha256, the image's content hash, the frame
and the Grad-CAM layer: the same model on the same pixels always gives the same map, so a
key never goes stale. :func:`busviewer.ai.gradcam.to_image_heatmap` turns a stored map into
the image-sized heatmap in a few milliseconds.

The folder is bounded: when its files exceed ``max_bytes`` the least recently used maps
(file modification time, refreshed on every hit) are deleted. Writes are atomic (a
temporary file renamed into place); an unreadable file is a miss and is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_SUFFIX = ".npy"


def default_cam_dir() -> Path:
    """``<busviewer data dir>/cam_cache``."""
    from busviewer.core.paths import data_dir

    return data_dir() / "cam_cache"


class CamCache:
    """On-disk Grad-CAM maps keyed by (model sha256, image hash, frame, layer); LRU-bounded."""

    def __init__(self, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root) if root is not None else default_cam_dir()
        self.max_bytes = int(max_bytes)

    def _path(self, model_sha256: str, image_hash: str, frame: int, layer: str) -> Path:
        name = hashlib.sha256(f"{model_sha256}\0{image_hash}\0{int(frame)}\0{layer}".encode()).hexdigest()
        return self.root / name[:2] / (name + _SUFFIX)

    def get(self, model_sha256: str, image_hash: str, frame: int = 0, layer: str = "conv") -> np.ndarray | None:
        """The stored ``(h, w) float32`` map, or None."""
        path = self._path(model_sha256, image_hash, frame, layer)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            log.info("unreadable Grad-CAM cache file %s removed: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        if arr.ndim != 2 or arr.dtype != np.float32 or not np.isfinite(arr).all():
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least-recently-used order
        return arr

    def put_many(self, items: Iterable[tuple[str, str, int, str, np.ndarray]]) -> int:
        """Store ``(model_sha256, image_hash, frame, layer, map)`` items, then bound the folder.
        Returns how many were written; a write error is logged, never raised (a cache)."""
        written = 0
        for sha, image_hash, frame, layer, fmap in items:
            arr = np.ascontiguousarray(fmap, dtype=np.float32)
            if arr.ndim != 2 or not np.isfinite(arr).all():
                continue
            path = self._path(sha, image_hash, frame, layer)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        np.save(fh, arr, allow_pickle=False)
                    os.replace(tmp, path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                written += 1
            except OSError as exc:
                log.warning("Grad-CAM cache: could not write %s: %s", path, exc)
        if written:
            self.trim()
        return written

    def put(self, model_sha256: str, image_hash: str, frame: int, layer: str, fmap: np.ndarray) -> None:
        """Store one map."""
        self.put_many([(model_sha256, image_hash, frame, layer, fmap)])

    def size_bytes(self) -> int:
        """Disk space the stored maps take (allocated blocks)."""
        return sum(size for _, _, size in self._files())

    def _files(self) -> list[tuple[float, Path, int]]:
        out: list[tuple[float, Path, int]] = []
        if not self.root.is_dir():
            return out
        for sub in os.scandir(self.root):
            if not sub.is_dir():
                continue
            for f in os.scandir(sub.path):
                if f.name.endswith(_SUFFIX):
                    try:
                        st = f.stat()
                    except OSError:
                        continue
                    on_disk = getattr(st, "st_blocks", 0) * 512 or st.st_size  # blocks, not bytes
                    out.append((st.st_mtime, Path(f.path), on_disk))
        return out

    def trim(self) -> int:
        """Delete least recently used maps until the folder holds <= ``max_bytes``; returns
        how many were deleted."""
        files = self._files()
        total = sum(size for _, _, size in files)
        removed = 0
        for _, path, size in sorted(files, key=lambda t: t[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed
