"""``doctor``: this machine, every model role's state, and (``--smoke``) the smallest request of each tab.

    python -m portrait_studio doctor [--smoke] [--json]

Exit 0 when all is well; 2 with one line per problem on stderr (missing or incomplete roles, no ffmpeg,
a failed smoke request).
"""

from __future__ import annotations

import argparse
import json
import sys

from portrait_studio.cli import add_command
from portrait_studio.config import Settings


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.models.doctor import build_report, format_table

    report = build_report(settings)
    if args.smoke:
        from portrait_studio.models.lease import DeviceLease, Holder
        from portrait_studio.models.smoke import run_smoke

        # The smoke run loads models onto the device like any request: it waits while training holds it.
        lease = DeviceLease.for_settings(settings)
        with lease.hold(Holder("cli", "doctor --smoke"), on_wait=lambda message: print(message, file=sys.stderr)):
            report.smoke = run_smoke(settings)
        report.roles = build_report(settings).roles  # the smoke run built or loaded roles: show them as they are now
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_table(report))
    problems = report.problems()
    for line in problems:
        print(line, file=sys.stderr)
    return 2 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "doctor", run_doctor, "check this machine and which model weights are ready")
    parser.add_argument("--smoke", action="store_true", help="load every present role and run each tab's smallest job")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
