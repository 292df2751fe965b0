"""A "Download" button beside a tab's missing-weights message (local apps; public ones only when the owner
sets ``PORTRAIT_STUDIO_PUBLIC_DOWNLOADS=1``). The size is on the button; the disk is checked first."""

from __future__ import annotations

import gradio as gr

from portrait_studio.models.doctor import size_text
from portrait_studio.models.downloads import download_roles, download_size_mb, missing_roles
from portrait_studio.services import Services
from ui.common import call_service, missing_markdown, progress_fn


def downloads_allowed(services: Services) -> bool:
    settings = services.settings
    if settings.offline or settings.profile == "tiny":
        return False
    return settings.public_downloads or not settings.public


def missing_notice(services: Services, roles: list[str]) -> gr.Markdown:
    """The tab's missing-weights message, and a button that fetches exactly those roles."""
    notice = gr.Markdown(missing_markdown(services, roles))
    missing = missing_roles(services.settings, roles) if downloads_allowed(services) else []
    if not missing:
        return notice
    size = size_text(download_size_mb(services.settings, missing))
    button = gr.Button(f"Download {', '.join(missing)} ({size})", variant="secondary", size="sm")

    def fetch(progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio injects the tracker this way
        call_service(download_roles, services.settings, missing, progress_fn(progress))
        text = missing_markdown(services, roles)
        return gr.Markdown(text or "Downloaded: ready to use."), gr.Button(visible=False)

    button.click(fetch, None, [notice, button], api_name=False)
    return notice
