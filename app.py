"""Portrait Studio entry point: ``python app.py`` (launch.sh and Hugging Face Spaces both run this).

settings -> services -> ui.build_app(services) -> launch, with safe defaults: 127.0.0.1, analytics off,
an upload size cap, Gradio's temp dir inside our home, and no public share link without a password.

A share link or a Hugging Face Space is a *public* deployment (``Settings.public``): every visitor gets
their own namespace (ui.common.request_owner), a per-browser visitor cookie is set (ui.deploy), and a
janitor deletes uploads and outputs older than ``cleanup_after_hours``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

spaces = None
# ZeroGPU on Spaces: `spaces` must be imported before torch touches CUDA. Elsewhere it is a no-op that costs
# seconds of start-up (it imports httpx and pydantic), so a local run skips it. Start-up imports no torch:
# the backend and the tabs import torch, diffusers and the face libraries on first use (tests/app/test_startup.py).
if os.environ.get("SPACE_ID") or os.environ.get("SPACES_ZERO_GPU"):
    try:
        import spaces  # noqa: F401
    except ImportError:
        pass

from portrait_studio.config import PROFILES, Settings, settings_from_env  # noqa: E402 - after `spaces`
from portrait_studio.errors import PortraitStudioError  # noqa: E402

AUTH_ENV = "PORTRAIT_STUDIO_AUTH"


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def default_host() -> str:
    # A Space routes traffic to 0.0.0.0:7860 inside its container (and says so in GRADIO_SERVER_NAME).
    fallback = "0.0.0.0" if on_space() else "127.0.0.1"
    return os.environ.get("PORTRAIT_STUDIO_HOST") or os.environ.get("GRADIO_SERVER_NAME") or fallback


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start the Portrait Studio web app.")
    parser.add_argument("--host", default=default_host())
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("PORTRAIT_STUDIO_PORT") or os.environ.get("GRADIO_SERVER_PORT")
                                    or "7860"))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (needs --auth)")
    parser.add_argument("--auth", default=os.environ.get(AUTH_ENV), help=f"USER:PASS (or env {AUTH_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="allow --share without a password (not advised)")
    parser.add_argument("--profile", choices=PROFILES, default=None)
    parser.add_argument("--home", default=None)
    parser.add_argument("--offline", action="store_true")
    return parser.parse_args(argv)


def parse_auth(raw: str | None) -> tuple[str, str] | None:
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"--auth must look like USER:PASSWORD (got {raw.split(':')[0]!r}:...)")
    return user, password


def prepare_environment(settings: Settings) -> None:
    """Set Gradio's environment before gradio is imported (it reads these at import time)."""
    settings.ensure_dirs()
    os.environ["GRADIO_TEMP_DIR"] = str(settings.temp_dir)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if on_space() and settings.home.is_relative_to("/data"):  # persistent storage: download weights once
        os.environ.setdefault("HF_HOME", "/data/.huggingface")
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"


def configure_logging() -> None:
    """Our own loggers at INFO on stderr (GPU slot, janitor, jobs); third-party libraries stay quiet."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("portrait_studio", "ui"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


def blocked_paths(settings: Settings) -> list[str]:
    """Folders Gradio must never serve or copy from, even if someone widens ``allowed_paths`` later."""
    return [str(p) for p in (settings.registry_dir, settings.jobs_dir, settings.weights_dir, settings.tiny_dir)]


def preload_for_zero_gpu(services: object) -> None:
    """On ZeroGPU, put every model of every tab on cuda at start-up (never inside a billed call), and have
    each call log how many models it still loaded; missing weights are reported by the tabs instead."""
    from portrait_studio.preload import preload_every_tab
    from ui.gpu import watch_model_loads, zero_gpu

    if not zero_gpu():
        return
    manager = services.manager  # type: ignore[attr-defined]
    report = preload_every_tab(manager)
    logger = logging.getLogger("portrait_studio")
    logger.info("ZeroGPU: preloaded %s", ", ".join(report.placed))
    for group, reason in report.skipped.items():
        logger.warning("ZeroGPU: %s not preloaded: %s", group, reason)
    watch_model_loads(lambda: manager.cache.stats.loads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_env(profile=args.profile, home=args.home, offline=args.offline or None)
    except PortraitStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auth = parse_auth(args.auth)
    public = args.share or on_space()
    if args.share and auth is None and not args.no_auth:
        print("error: --share publishes this app on the internet; add --auth USER:PASS "
              f"(or set {AUTH_ENV}), or pass --no-auth if you really mean it.", file=sys.stderr)
        return 2
    settings = settings.replace(public=public or settings.public)
    prepare_environment(settings)

    configure_logging()

    from portrait_studio.janitor import Janitor
    from portrait_studio.services import Services
    from ui import build_app
    from ui.app import CSS
    from ui.deploy import guard_middleware

    services = Services.create(settings, resume_jobs=False)  # resumed below, once the server is up
    preload_for_zero_gpu(services)
    if settings.public:
        Janitor([settings.outputs_dir, settings.temp_dir], settings.cleanup_after_hours * 3600).start()
    demo = build_app(services)
    # One bounded queue: a full queue answers "busy, try again" instead of piling up work.
    # Public: no direct /run or /api calls that skip the queue (gradio_client goes through the queue anyway).
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4, api_open=not settings.public)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share and not on_space(),
        auth=auth,
        max_file_size=f"{settings.max_upload_mb}mb",
        # Only so Gradio may copy results into its cache; ui.deploy refuses direct requests into our home.
        allowed_paths=[str(settings.outputs_dir)],
        blocked_paths=blocked_paths(settings),
        app_kwargs={"middleware": guard_middleware(settings.home, settings.temp_dir, settings.public, settings)},
        enable_monitoring=False if settings.public else None,  # None: Gradio's default (on, no URL printed)
        footer_links=["api"],
        css=CSS,
        prevent_thread_lock=True,
    )
    services.resume_jobs_in_background()  # after launch: a folder of old jobs never delays the first page
    demo.block_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
