"""What every test needs: traffic to 127.0.0.1 never goes through a proxy."""

import pytest

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(autouse=True, scope="session")
def no_proxy():
    """WebClient, SocketModeClient and requests read HTTP(S)_PROXY: drop them for the session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PROXY_VARS:
            mp.delenv(name, raising=False)
        yield
