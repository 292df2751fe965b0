"""Delete old temporary files: per-request outputs and Gradio's upload/cache folder on public deployments.

A public app collects every visitor's uploads and results. :func:`sweep` removes files older than a
maximum age (by modification time) under the given roots, then the folders left empty; a background
:class:`Janitor` runs it every so often. Symlinks are removed as links, never followed, and nothing
outside the roots is touched. A job still writing has fresh files, so its folder is left alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    files: int = 0
    folders: int = 0
    bytes: int = 0


def sweep(roots: Sequence[Path], max_age_seconds: float, now: float | None = None) -> SweepReport:
    """Delete files older than ``max_age_seconds`` under each root, then empty folders (never the roots)."""
    cutoff = (time.time() if now is None else now) - max_age_seconds
    report = SweepReport()
    emptied: set[str] = set()  # folders we removed entries from: their mtime is now, their content was old
    for root in roots:
        root = Path(root)
        if not root.is_dir() or root.is_symlink():
            continue
        for folder, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(folder, d))]:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                    if info.st_mtime < cutoff:
                        os.unlink(path)
                        emptied.add(folder)
                        report.files += 1
                        report.bytes += info.st_size
                except FileNotFoundError:
                    continue
                except OSError as exc:  # in use or no permission: try again next round
                    log.warning("janitor could not delete %s: %s", path, exc)
            if os.path.realpath(folder) != os.path.realpath(root):
                try:
                    # A fresh empty folder belongs to a job that has not written yet: leave it.
                    if not os.listdir(folder) and (folder in emptied or os.lstat(folder).st_mtime < cutoff):
                        os.rmdir(folder)
                        emptied.add(os.path.dirname(folder))
                        report.folders += 1
                except OSError:
                    continue  # not empty after all (a job just wrote into it), or already gone
    return report


class Janitor:
    """Runs :func:`sweep` over ``roots`` every ``interval_seconds`` on a daemon thread."""

    def __init__(self, roots: Sequence[Path], max_age_seconds: float, interval_seconds: float | None = None) -> None:
        self.roots = [Path(r) for r in roots]
        self.max_age_seconds = max_age_seconds
        # Often enough that nothing outlives its age by much, rarely enough to cost nothing.
        self.interval_seconds = interval_seconds or min(max(max_age_seconds / 4, 1.0), 3600.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Janitor:
        self._thread = threading.Thread(target=self._loop, name="janitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                report = sweep(self.roots, self.max_age_seconds)
            except Exception:  # noqa: BLE001 - the janitor must outlive any one bad folder
                log.exception("janitor sweep failed")
                continue
            if report.files or report.folders:
                log.info("janitor removed %d files (%d bytes) and %d folders", report.files, report.bytes,
                         report.folders)
