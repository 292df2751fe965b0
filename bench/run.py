"""Run the benchmarks side by side and print one table of ratios.

    python bench/run.py                 # everything
    python bench/run.py sd faces        # only some
    python bench/run.py animate --real  # only the benches that can use real weights, with them
    python bench/run.py startup         # start-up to first page, ours against a bare Gradio app
Each bench module exposes ``run() -> list[dict]`` with keys bench, case, seconds, ratio, ratio_means;
``run(real=True)`` where a bench can also measure with the real weights.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHES = {
    "sd": "sd_bench",
    "faces": "faces_bench",
    "train": "train_bench",
    "animate": ("animate_bench", "animate_face_bench"),
    "long_animate": "long_animate_bench",
    "talk": ("talk_bench", "aniportrait_bench"),
    "startup": "startup_bench",
}


def main(argv: list[str]) -> int:
    real = "--real" in argv
    unknown_flags = [a for a in argv if a.startswith("--") and a != "--real"]
    if unknown_flags:
        print(f"unknown option {unknown_flags}; the only option is --real", file=sys.stderr)
        return 2
    chosen = [a for a in argv if not a.startswith("--")] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    rows: list[dict] = []
    for name in chosen:
        modules = BENCHES[name] if isinstance(BENCHES[name], tuple) else (BENCHES[name],)
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                print(f"[{module_name}] skipped: {exc}", file=sys.stderr)
                continue
            takes_real = "real" in inspect.signature(module.run).parameters
            if real and not takes_real:
                print(f"[{module_name}] skipped: it has no real-weights mode", file=sys.stderr)
                continue
            started = time.perf_counter()
            print(f"[{module_name}] running...", file=sys.stderr, flush=True)
            rows.extend(module.run(real=True) if real else module.run())
            print(f"[{module_name}] done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    headers = ("bench", "case", "seconds", "ratio", "ratio means")
    cells = [
        (
            str(r["bench"]),
            str(r["case"]),
            "-" if r.get("seconds") is None or math.isnan(r["seconds"]) else f"{r['seconds']:.3f}",
            f"{r['ratio']:.3f}",
            str(r.get("ratio_means", "")),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
