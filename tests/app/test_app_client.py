"""The running app driven through its public API with gradio_client, as a script user would."""

import json

import pytest
from gradio_client import Client
from PIL import Image


def stylize_args(prompt: str = "a portrait photo", seed: int = 11, sampler: str = "DDIM") -> tuple:
    """Positional inputs of /stylize: likeness, weight, preset, prompt, negative, n, seed, best-of, restore,
    template, template name, denoise, control, style LoRAs, style weight, sampler, steps, guidance, w, h."""
    return ("", 0.9, "", prompt, "", 1, seed, False, 0, None, "", 0.6, "canny", [], 0.7, sampler, 2, 5.0, 0, 0)



def test_stylize_endpoint_generates_in_the_tiny_profile(tiny_app) -> None:
    client = Client(tiny_app.url, verbose=False)
    gallery, notes = client.predict(*stylize_args(), api_name="/stylize")
    assert len(gallery) == 1
    with Image.open(gallery[0]["image"]) as image:
        assert image.size == (64, 64)
        params = json.loads(image.text["parameters"])
    assert params["seed"] == 11 and params["random_weights"] is True
    assert "random-weight" in notes


def test_user_errors_reach_the_client_as_messages(tiny_app) -> None:
    client = Client(tiny_app.url, verbose=False)
    with pytest.raises(Exception, match="Choose a style preset or write a prompt"):
        client.predict(*stylize_args(prompt=""), api_name="/stylize")


def test_default_profile_without_weights_starts_and_explains(offline_default_app) -> None:
    client = Client(offline_default_app.url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(*stylize_args(), api_name="/stylize")
    message = str(err.value)
    assert "Missing model weights for 'base'" in message
    assert "python -m portrait_studio download --roles base" in message
    assert "Traceback" not in offline_default_app.log()
