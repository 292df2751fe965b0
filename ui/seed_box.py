"""A seed box that refuses an out-of-range value as soon as it is typed, saying the valid range."""

from __future__ import annotations

import math

import gradio as gr

from portrait_studio.stylize.generate import MAX_SEED

SEED_RANGE = f"-1 (random) or a whole number from 0 to {MAX_SEED}"


def seed_problem(value: object) -> str | None:
    """Why ``value`` is not a usable seed, or None when it is."""
    if value is None or value == "":
        return None  # an empty box means random
    try:
        number = float(value)  # the browser sends 99999999999999999999 as 1e20
    except (TypeError, ValueError):
        return f"The seed must be {SEED_RANGE}; {str(value)[:30]!r} is not a number."
    if not math.isfinite(number) or number != int(number) or not (number == -1 or 0 <= number <= MAX_SEED):
        shown = f"{int(number)}" if math.isfinite(number) and abs(number) < 1e15 else f"{number:.3g}"
        return f"Seed {shown} refused: the seed must be {SEED_RANGE}. It was set back to -1 (random)."
    return None


def seed_box(label: str = "Seed (-1 = random)", elem_id: str | None = None) -> gr.Number:
    """A seed Number with its check attached: a refused value is replaced by -1 and the reason stays shown."""
    # No minimum/maximum on the component: Gradio would then refuse the value with its own toast before
    # this check could say the range and put the box back.
    seed = gr.Number(value=-1, precision=0, label=label, elem_id=elem_id, info=f"-1 = random, else 0 to {MAX_SEED}")
    note = gr.Markdown(visible=False, elem_id=f"{elem_id}-note" if elem_id else None, elem_classes=["seed-note"])

    def check(value: object):
        problem = seed_problem(value)
        if problem is not None:
            return gr.update(value=-1), gr.update(value=f"⚠️ {problem}", visible=True)
        # -1 is also what a refusal puts back: keep the reason shown until another valid seed arrives.
        return gr.update(), gr.update() if value in (-1, None, "") else gr.update(value="", visible=False)

    seed.change(check, [seed], [seed, note], queue=False, show_progress="hidden", api_name=False)
    return seed
