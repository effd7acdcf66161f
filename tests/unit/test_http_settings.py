from typing import Any

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


def test_environment_settings_are_computed_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[str] = []
    original = requests.Session.merge_environment_settings

    def counting(self: requests.Session, url: str, *args: Any) -> Any:
        computed.append(url)
        return original(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    client = ApiClient("https://api.example.test", "run")
    for path in ("/a", "/b?x=1", "/c/d"):
        got = client.merge_environment_settings(
            f"https://api.example.test{path}", {}, None, None, None
        )
        assert got["stream"] is False and got["cert"] is None  # the session's own
    assert computed == ["https://api.example.test/a"]
    client.merge_environment_settings("https://other.example.test/a", {}, None, None, None)
    assert len(computed) == 2
    with_options = client.merge_environment_settings(
        "https://api.example.test/e", {}, True, None, "c.pem"
    )
    assert with_options["stream"] is True and with_options["cert"] == "c.pem"
    assert len(computed) == 2  # the request's own stream and cert go over the cached answer
    client.merge_environment_settings(
        "https://api.example.test/f", {"https": "p"}, None, None, None
    )
    client.merge_environment_settings("https://api.example.test/g", {}, None, False, None)
    client.trust_env = False
    client.merge_environment_settings("https://api.example.test/h", {}, None, None, None)
    assert computed[2:] == [
        "https://api.example.test/f",
        "https://api.example.test/g",
        "https://api.example.test/h",
    ]  # explicit proxies, verify off, no environment: asked every time, never cached


def test_the_client_mounts_its_retries_for_both_schemes() -> None:
    client = ApiClient("https://api.example.test/", "run")
    assert client.base_url == "https://api.example.test"
    for scheme in ("http://", "https://"):
        adapter = client.get_adapter(scheme + "x.example.test")
        assert adapter.max_retries.total == 4  # type: ignore[attr-defined]
        assert adapter._pool_maxsize == 16  # type: ignore[attr-defined]


def test_only_trailing_slashes_are_trimmed_from_the_base_url() -> None:
    assert ApiClient("http://127.0.0.1:9/X//", "run").base_url == "http://127.0.0.1:9/X"


@pytest.mark.parametrize("session_verify", [False, "/etc/ssl/own-ca.pem"])
def test_a_request_that_asks_for_verification_gets_it_whatever_was_cached(
    monkeypatch: pytest.MonkeyPatch, session_verify: bool | str
) -> None:
    """requests reads ``verify=None`` as "the session's", ``verify=True`` as "verify": the
    cached answer for one must not be given to the other."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    client, plain = ApiClient("https://api.example.test", "run"), requests.Session()
    client.verify = plain.verify = session_verify
    url = "https://api.example.test/health"
    for verify in (None, True, None, True):
        got = client.merge_environment_settings(url, {}, None, verify, None)
        assert got == plain.merge_environment_settings(url, {}, None, verify, None), verify
    assert client.merge_environment_settings(url, {}, None, True, None)["verify"] is True


def test_a_requests_own_proxies_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    client = ApiClient("https://api.example.test", "run")
    own = {"https": "http://own-proxy.example.test:8080"}
    got = client.merge_environment_settings("https://api.example.test/a", own, None, None, None)
    assert got["proxies"] == own
    got = client.merge_environment_settings("https://api.example.test/a", {}, None, None, None)
    assert got["proxies"]["https"] == "http://proxy.example.test:3128"  # the environment's


def test_verify_none_and_true_are_each_computed_once_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[Any] = []
    original = requests.Session.merge_environment_settings

    def counting(self: requests.Session, url: str, *args: Any) -> Any:
        computed.append(args[2])  # verify
        return original(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    client = ApiClient("https://api.example.test", "run")
    for verify in (None, True, None, True):
        client.merge_environment_settings("https://api.example.test/a", {}, None, verify, None)
    assert computed == [None, True]
