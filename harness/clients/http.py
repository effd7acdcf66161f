"""The HTTP client for one worker: a ``requests.Session`` that knows the environment.

Owns the base URL, timeouts, retries of idempotent methods (urllib3 ``Retry`` on connection
errors and 502/503/504 — POST is never retried, so a create is never sent twice), the
``User-Agent`` and ``X-Harness-Run`` headers that let the service tell test traffic apart,
pluggable auth (the service's ``uid``/``token`` headers), and the transcript of the current
test: method, path, status, latency and bodies, redacted, shown when a test fails.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from harness.safety.redact import Redactor

USER_AGENT = "env-harness/0.1"
DEFAULT_TIMEOUT = (3.05, 15.0)
_MAX_BODY = 2000


def default_retry() -> Retry:
    return Retry(
        total=4,
        connect=4,
        read=2,
        status=3,
        backoff_factor=0.2,
        status_forcelist=(502, 503, 504),
        # idempotent methods only; equivalent mutants: urllib3's default, spelled out
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,  # pragma: no mutate
        raise_on_status=False,
        respect_retry_after_header=True,  # pragma: no mutate (equivalent: urllib3's default)
    )


@dataclass
class Exchange:
    method: str
    path: str
    status: int | None
    latency_ms: float
    request_body: Any = None
    response_body: Any = None
    error: str = ""

    def render(self) -> str:
        status = self.status if self.status is not None else f"ERROR {self.error}"
        lines = [f"{self.method} {self.path} -> {status} ({self.latency_ms:.0f} ms)"]
        bodies = (("  request: ", self.request_body), ("  response:", self.response_body))
        for label, body in bodies:
            if body not in (None, ""):
                text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
                lines.append(f"{label} {text[:_MAX_BODY]}")
        return "\n".join(lines)


@dataclass
class Transcript:
    exchanges: list[Exchange] = field(default_factory=list)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.exchanges) or "(no HTTP requests)"


def _decode(body: Any) -> Any:
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, bytes):
        # pragma: no mutate start (equivalent: "UTF-8" names the same codec)
        body = body.decode("utf-8", "replace")
        # pragma: no mutate end
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return str(body)


class ApiClient(requests.Session):
    """``api.get("/health")``: paths are joined to the base URL; everything is recorded."""

    def __init__(
        self,
        base_url: str,
        run_id: str,
        redactor: Redactor | None = None,
        retry: Retry | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.redactor = redactor or Redactor()
        self.transcript = Transcript()
        self.latencies: list[tuple[str, str, float]] = []
        self._environment_settings: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        adapter = HTTPAdapter(max_retries=retry or default_retry(), pool_maxsize=16)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["User-Agent"] = USER_AGENT
        self.headers["X-Harness-Run"] = run_id

    def new_transcript(self) -> Transcript:
        with self._lock:
            self.transcript = Transcript()
        return self.transcript

    def merge_environment_settings(  # type: ignore[override]
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """requests scans the whole process environment for proxy variables on every request
        (~0.3 ms each, the largest client-side cost after the socket); the environment does
        not change during a run, so its answer is kept per host and the request's own
        settings are applied over it exactly as requests would."""
        if not self.trust_env or proxies or verify not in (None, True):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        host = url.split("/", 3)[2] if "://" in url else url  # pragma: no mutate (same host)
        cached: Any = self._environment_settings.get(host)
        if cached is None:
            cached = dict(super().merge_environment_settings(url, {}, None, verify, None))
            self._environment_settings[host] = cached
        merged = dict(cached)
        merged["proxies"] = dict(cached["proxies"])
        if stream is not None:
            merged["stream"] = stream
        if cert is not None:
            merged["cert"] = cert
        return merged

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", self.timeout)
        path = url[len(self.base_url) :] if url.startswith(self.base_url) else url
        request_body = kwargs.get("json", kwargs.get("data"))
        started = time.perf_counter()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as error:
            self._record(method, path, None, started, request_body, None, str(error))
            raise
        self._record(method, path, response.status_code, started, request_body, response.content)
        return response

    def _record(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        request_body: Any,
        response_body: Any,
        error: str = "",
    ) -> None:
        latency = (time.perf_counter() - started) * 1000
        redact = self.redactor.data
        request_data, response_data = _decode(request_body), _decode(response_body)
        self.redactor.learn(request_data)
        self.redactor.learn(response_data)
        exchange = Exchange(
            method=method.upper(),
            path=path,
            status=status,
            latency_ms=latency,
            request_body=redact(request_data),
            response_body=redact(response_data),
            error=self.redactor.text(error),
        )
        with self._lock:
            self.transcript.exchanges.append(exchange)
            self.latencies.append((method.upper(), path, latency))
