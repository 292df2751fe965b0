"""Portrait Studio entry point: ``python app.py`` (launch.sh and Hugging Face Spaces both run this).

settings -> services -> ui.build_app(services) -> launch, with safe defaults: 127.0.0.1, analytics off,
an upload size cap, Gradio's temp dir inside our home, and no public share link without a password.
"""

from __future__ import annotations

import argparse
import os
import sys

try:  # ZeroGPU on Spaces: `spaces` must be imported before torch touches CUDA. A no-op elsewhere.
    import spaces  # noqa: F401
except ImportError:
    spaces = None

from portrait_studio.config import PROFILES, Settings, settings_from_env
from portrait_studio.errors import PortraitStudioError

AUTH_ENV = "PORTRAIT_STUDIO_AUTH"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start the Portrait Studio web app.")
    parser.add_argument("--host", default=os.environ.get("PORTRAIT_STUDIO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORTRAIT_STUDIO_PORT", "7860")))
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
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_env(profile=args.profile, home=args.home, offline=args.offline or None)
    except PortraitStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auth = parse_auth(args.auth)
    public = args.share or bool(os.environ.get("SPACE_ID"))
    if args.share and auth is None and not args.no_auth:
        print("error: --share publishes this app on the internet; add --auth USER:PASS "
              f"(or set {AUTH_ENV}), or pass --no-auth if you really mean it.", file=sys.stderr)
        return 2
    settings = settings.replace(public=public or settings.public)
    prepare_environment(settings)

    from portrait_studio.services import Services
    from ui import build_app

    services = Services.create(settings)
    demo = build_app(services)
    demo.queue(max_size=32, default_concurrency_limit=4)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[str(settings.outputs_dir)],
        footer_links=["api"],
        css=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
