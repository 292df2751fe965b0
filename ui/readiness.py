"""Actions that cannot run for missing weights: disabled, with the reason and a Download button beside them.

``ActionGate(services, [actions])`` looks up (``portrait_studio.models.needs``) which roles each action needs;
``gate.interactive(action)`` is what the tab passes to its button, and ``gate.notice({action: button})``,
placed next to the buttons, lists every role the tab's modes need (required ones first) with the
existing Download button of ``ui.downloads``; after a download the buttons are enabled again.
"""

from __future__ import annotations

import gradio as gr

from portrait_studio.models.doctor import size_text
from portrait_studio.models.downloads import download_roles, download_size_mb
from portrait_studio.models.needs import ACTIONS, ActionReadiness, action_readiness
from portrait_studio.services import Services
from ui.common import call_service, progress_fn
from ui.downloads import downloads_allowed


class ActionGate:
    def __init__(self, services: Services, actions: list[str]) -> None:
        self.services = services
        self.readiness: dict[str, ActionReadiness] = {a: action_readiness(services.settings, a) for a in actions}

    def interactive(self, action: str) -> bool:
        return self.readiness[action].ready

    def missing(self) -> list[str]:
        found: list[str] = []
        for readiness in self.readiness.values():
            found.extend(r for r in readiness.missing if r not in found)
        return found

    def markdown(self) -> str:
        blocked = [r for r in self.readiness.values() if not r.ready]
        if not blocked:
            return ""
        lines = [f"**{r.label}** is switched off: it needs {', '.join(f'`{m}`' for m in r.missing)}, not on this "
                 "machine yet." for r in blocked]
        purposes: dict[str, list[str]] = {}
        statuses = {}
        for readiness in self.readiness.values():
            modes = ACTIONS[readiness.action].optional
            for name, status in readiness.statuses.items():
                statuses[name] = status
                purpose = modes.get(name) or f"{readiness.label} (required)"
                if purpose not in purposes.setdefault(name, []):
                    purposes[name].append(purpose)
        # One line per purpose and state (eight camera-motion LoRAs are one line, not eight). A list, not a
        # table: the notice sits in the form's column, where a four-column table squeezes to a letter a line.
        rows: dict[tuple[str, str], list[str]] = {}
        for name, status in statuses.items():
            state = "ready" if status.ready else status.state
            rows.setdefault(("; ".join(purposes[name]), state), []).append(name)
        lines.append("")
        for (purpose, state), names in rows.items():
            megabytes = sum(statuses[n].download_mb for n in names)
            fetch = f", {size_text(megabytes)} to download" if megabytes else ""
            lines.append(f"- **{purpose}**: {', '.join(f'`{n}`' for n in names)} ({state}{fetch})")
        command = f"`python -m portrait_studio download --roles {','.join(self.missing())}`"
        if downloads_allowed(self.services):
            lines += ["", f"Fetch them with the Download button below, or with {command}"]
        else:  # offline, the tiny profile or a public app: no button here
            lines += ["", f"Downloads are off in this app. On a machine with network, restart it after {command}"]
        return "\n".join(lines)

    def notice(self, buttons: dict[str, gr.Button]) -> gr.Markdown:
        text = self.markdown()
        notice = gr.Markdown(text, visible=bool(text), elem_classes=["missing-weights"])
        missing = self.missing() if downloads_allowed(self.services) else []
        if not missing:
            return notice
        size = size_text(download_size_mb(self.services.settings, missing))
        button = gr.Button(f"Download {', '.join(missing)} ({size})", variant="secondary", size="sm")
        actions = list(buttons)

        def fetch(progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio injects the tracker this way
            call_service(download_roles, self.services.settings, missing, progress_fn(progress))
            self.readiness = {a: action_readiness(self.services.settings, a) for a in self.readiness}
            enabled = [gr.Button(interactive=self.interactive(a)) for a in actions]
            text = self.markdown()
            return (gr.Markdown(text or "Downloaded: ready to use.", visible=True), gr.Button(visible=False),
                    *enabled)

        button.click(fetch, None, [notice, button, *buttons.values()], api_name=False)
        return notice
