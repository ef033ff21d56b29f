import pytest

pytestmark = pytest.mark.browser


def test_browser_reaches_gunicorn(live_server_url: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server_url + "/api-keys")
    assert page.locator("h1").inner_text() == "TensorZero API Keys"
