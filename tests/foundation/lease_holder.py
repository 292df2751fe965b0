"""Another process on the same device: ``python lease_holder.py HOME KIND TASK JOB_DIR RELEASE_FILE``.

Takes the device lease as ``KIND``/``TASK`` (waiting if need be, printing why), prints ``held``, keeps it
until ``RELEASE_FILE`` exists, then prints ``released`` and exits. Imports no torch: it starts fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from portrait_studio.models.lease import DeviceLease, Holder


def main(home: str, kind: str, task: str, job_dir: str, release_file: str) -> int:
    lease = DeviceLease(Path(home), enabled=True, poll_seconds=0.05)
    with lease.hold(Holder(kind, task, job_dir=job_dir), on_wait=lambda message: print(f"waiting: {message}",
                                                                                       flush=True)):
        print("held", flush=True)
        while not Path(release_file).exists():
            time.sleep(0.02)
        print("released", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
