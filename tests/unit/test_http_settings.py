import pytest
import requests

from harness.clients.http import ApiClient


@pytest.mark.parametrize("verify", [None, True])
def test_cached_environment_settings_match_what_requests_computes(
    monkeypatch: pytest.MonkeyPatch, verify: bool | None
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    client, plain = ApiClient("https://api.example.test", "run"), requests.Session()
    for url in ("https://api.example.test/health", "https://internal.example.test/x"):
        for _ in range(2):  # the second answer comes from the cache
            got = client.merge_environment_settings(url, {}, None, verify, None)
            assert got == plain.merge_environment_settings(url, {}, None, verify, None)
    explicit = client.merge_environment_settings(
        "https://api.example.test/health", {}, True, False, "c.pem"
    )
    assert explicit["verify"] is False and explicit["stream"] is True
    assert explicit["cert"] == "c.pem"
