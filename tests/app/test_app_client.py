"""The running app driven through its public API with gradio_client, as a script user would."""

import json

import pytest
from gradio_client import Client
from PIL import Image

STYLIZE_ARGS = ("a portrait photo", "", 1, 11, "DDIM", 2, 5.0, 0, 0)


def test_stylize_endpoint_generates_in_the_tiny_profile(tiny_app) -> None:
    client = Client(tiny_app.url, verbose=False)
    gallery, notes = client.predict(*STYLIZE_ARGS, api_name="/stylize")
    assert len(gallery) == 1
    with Image.open(gallery[0]["image"]) as image:
        assert image.size == (64, 64)
        params = json.loads(image.text["parameters"])
    assert params["seed"] == 11 and params["random_weights"] is True
    assert "random-weight" in notes


def test_user_errors_reach_the_client_as_messages(tiny_app) -> None:
    client = Client(tiny_app.url, verbose=False)
    with pytest.raises(Exception, match="The prompt is empty"):
        client.predict("", "", 1, 1, "DDIM", 2, 5.0, 0, 0, api_name="/stylize")


def test_default_profile_without_weights_starts_and_explains(offline_default_app) -> None:
    client = Client(offline_default_app.url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(*STYLIZE_ARGS, api_name="/stylize")
    message = str(err.value)
    assert "Missing model weights for 'base'" in message
    assert "python -m portrait_studio download --roles base" in message
    assert "Traceback" not in offline_default_app.log()
