"""Calling the running app's endpoints by parameter name, robust to inputs being added to a tab."""

from __future__ import annotations

from typing import Any

from gradio_client import Client


def endpoint_args(client: Client, api_name: str, named: dict[str, Any]) -> list[Any]:
    """Positional arguments for ``api_name``: the given values by name, defaults (or None) for the rest."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][api_name]
    names = [p["parameter_name"] for p in info["parameters"]]
    unknown = set(named) - set(names)
    assert not unknown, f"{api_name} has no parameters {sorted(unknown)}; it takes {names}"
    args = []
    for param in info["parameters"]:
        if param["parameter_name"] in named:
            args.append(named[param["parameter_name"]])
        else:
            args.append(param["parameter_default"] if param.get("parameter_has_default") else None)
    return args


def call(client: Client, api_name: str, **named: Any) -> Any:
    return client.predict(*endpoint_args(client, api_name, named), api_name=api_name)


def submit(client: Client, api_name: str, **named: Any):
    return client.submit(*endpoint_args(client, api_name, named), api_name=api_name)


def stylize_args(seed: int, steps: int = 2) -> dict[str, Any]:
    """A tiny-profile Stylize request: own prompt, one 64 px image, a fixed seed, few steps."""
    return {"prompt_text": "a portrait photo", "count": 1, "seed_value": seed, "step_count": steps, "w": 64, "h": 64}
