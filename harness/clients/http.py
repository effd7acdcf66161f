"""The HTTP client for one worker: a ``requests.Session`` that knows the environment.

Owns the base URL, timeouts, retries of idempotent methods (urllib3 ``Retry`` on connection
errors and 502/503/504 — POST is never retried, so a create is never sent twice), the
``User-Agent`` and ``X-Harness-Run`` headers that let the service tell test traffic apart,
the test's trace on every request (``traceparent``, a span each; ``X-Amzn-Trace-Id`` when
the profile asks: :mod:`harness.clients.trace`), pluggable auth
(the service's ``uid``/``token`` headers), and the transcript of the current
test: method, path with its query, status, latency, bodies and the headers worth reading,
redacted — a long body cut first, to a cap — shown when a test fails. Bodies are kept as
data (a ``json=`` dict, a ``data=`` form) so masking by key reaches every depth; sensitive
values in bodies, query strings and headers are also registered, so they are masked by value
wherever else they turn up.

On a protected profile it carries the profile's :class:`~harness.safety.protect.HttpGuard`:
every request — through ``request``, ``send`` or a redirect — is checked before it leaves,
and a write that is not allowed raises ``ProtectedTargetError`` with nothing sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from harness.clients.trace import TestTrace, trace_id_of
from harness.safety.protect import HttpGuard, ProtectedTargetError
from harness.safety.redact import SHOWN, Redactor, shorten

USER_AGENT = "env-harness/0.1"
DEFAULT_TIMEOUT = (3.05, 15.0)
#: The most characters of one body or header set a transcript shows (then a cut marker).
_MAX_BODY = SHOWN
#: ``requests.Session.request``'s parameters after the URL, in order (all may be positional).
_POSITIONAL = (
    "params",
    "data",
    "headers",
    "cookies",
    "files",
    "auth",
    "timeout",
    "allow_redirects",
    "proxies",
    "hooks",
    "stream",
    "verify",
    "cert",
    "json",
)
#: Headers every request or response carries; the transcript shows only the others.
_ROUTINE_HEADERS = frozenset(
    {
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "date",
        "server",
        "keep-alive",
        "transfer-encoding",
        "x-harness-run",
        # on every request of a test: its span is shown on the exchange's line instead
        "traceparent",
        "x-amzn-trace-id",
    }
)


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
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    #: The request's span in the test's trace (from its ``traceparent``), "" without one.
    span_id: str = ""

    def render(self) -> str:
        status = self.status if self.status is not None else f"ERROR {self.error}"
        span = f" span {self.span_id}" if self.span_id else ""
        lines = [f"{self.method} {self.path} -> {status} ({self.latency_ms:.0f} ms){span}"]
        parts = (
            ("  request headers:", self.request_headers),
            ("  request: ", self.request_body),
            ("  response headers:", self.response_headers),
            ("  response:", self.response_body),
        )
        for label, body in parts:
            if body not in (None, "", {}):
                text = body if isinstance(body, str) else _json(body)
                lines.append(f"{label} {shorten(text, _MAX_BODY)}")
        return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(
        data,
        sort_keys=True,
        ensure_ascii=False,  # pragma: no mutate (equivalent: None is as false)
    )


def _shown_body(redactor: Redactor, body: Any) -> Any:
    """A body as a transcript shows it: masked as data — key by key, at any depth — while
    its JSON fits in ``_MAX_BODY`` characters; a longer one has its sensitive keys' values
    masked, is written out, then cut before the rest is masked (:meth:`Redactor.shown`):
    never masked whole, so a 10 MB response costs what is shown of it."""
    if isinstance(body, str):
        return redactor.shown(body, _MAX_BODY)
    if not isinstance(body, dict | list) or len(_json(body)) <= _MAX_BODY:
        return redactor.data(body)
    return redactor.shown(_json(redactor.masked_keys(body)), _MAX_BODY)


@dataclass
class Recorded:
    """One exchange as it went, redacted only when shown: most tests pass and their
    exchanges are never read, so masking them eagerly was the larger part of the client's
    cost per request. What it holds cannot change after the request (the decoded bodies
    are the recorder's own objects, the headers those sent and received); its secrets were
    learned when it was recorded, and showing it later masks every secret learned since."""

    redactor: Redactor
    method: str
    path: str
    status: int | None
    latency_ms: float
    request_data: Any
    response_data: Any
    error: str
    request_headers: Mapping[str, str] | None
    response_headers: Mapping[str, str] | None

    def __repr__(self) -> str:  # never the raw values, e.g. in a traceback's locals
        return f"Recorded({self.method} {self.path} -> {self.status})"

    def shown(self) -> Exchange:
        redactor = self.redactor
        return Exchange(
            method=self.method,
            path=self.path,
            status=self.status,
            latency_ms=self.latency_ms,
            request_body=_shown_body(
                redactor,
                _decode(self.request_data)
                if isinstance(self.request_data, bytes)
                else self.request_data,
            ),
            response_body=_shown_body(redactor, self.response_data),
            error=redactor.shown(self.error, _MAX_BODY),
            request_headers=redactor.headers(_shown_headers(self.request_headers)),
            response_headers=redactor.headers(_shown_headers(self.response_headers)),
            span_id=_span_of(self.request_headers),
        )


@dataclass
class Transcript:
    """The current test's exchanges: ``exchanges`` shows them redacted (each once)."""

    entries: list[Exchange | Recorded] = field(default_factory=list)

    @property
    def exchanges(self) -> list[Exchange]:
        shown = [e.shown() if isinstance(e, Recorded) else e for e in self.entries]
        self.entries[: len(shown)] = shown
        return shown

    def render(self) -> str:
        return "\n".join(e.render() for e in self.exchanges) or "(no HTTP requests)"


def _decode(body: Any) -> Any:
    """A body as data: JSON parsed, a ``json=``/``data=`` dict or list kept as it is (never
    ``str(dict)``, which key-based masking could not see into), form pairs as a dict."""
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, bytes | bytearray):
        # pragma: no mutate start (equivalent: "UTF-8" names the same codec)
        body = bytes(body).decode("utf-8", "replace")
        # pragma: no mutate end
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    if isinstance(body, Mapping):
        return dict(body)
    if isinstance(body, list | tuple):
        if body and all(isinstance(p, tuple) and len(p) == 2 for p in body):
            return {str(k): v for k, v in body}  # data=[("k", "v"), ...]
        return list(body)
    if isinstance(body, int | float | bool):
        return body
    return f"<{type(body).__name__} body>"  # a file or a generator: not read twice


def _span_of(headers: Mapping[str, str] | None) -> str:
    parent = (headers or {}).get("traceparent")
    return parent.split("-")[2] if parent and trace_id_of(parent) else ""


def _shown_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in _ROUTINE_HEADERS}


class ApiClient(requests.Session):
    """``api.get("/health")``: paths are joined to the base URL; everything is recorded."""

    def __init__(
        self,
        base_url: str,
        run_id: str,
        redactor: Redactor | None = None,
        retry: Retry | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        guard: HttpGuard | None = None,
        trace: TestTrace | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        #: The current test's trace: each request carries a new span of it (None: no header).
        self.trace = trace
        #: Set on a protected profile: which requests may leave (None: all of them).
        self.guard = guard
        self.timeout = timeout
        self.redactor = redactor or Redactor()
        self.transcript = Transcript()
        self.latencies: list[tuple[str, str, float]] = []
        self._environment_settings: dict[tuple[str, Any], dict[str, Any]] = {}
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
        not change during a run, so its answer is kept per host (and ``verify``: None and True
        differ when the session's own ``verify`` is set) and the request's own stream and
        cert are applied over it exactly as requests would."""
        if not self.trust_env or proxies or verify not in (None, True):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        # pragma: no mutate start (equivalent: any key per host; only the cache's hits differ)
        host = url.split("/", 3)[2] if "://" in url else url
        # pragma: no mutate end
        cached: Any = self._environment_settings.get((host, verify))
        if cached is None:
            cached = dict(super().merge_environment_settings(url, {}, None, verify, None))
            self._environment_settings[host, verify] = cached
        merged = dict(cached)
        merged["proxies"] = dict(cached["proxies"])
        if stream is not None:
            merged["stream"] = stream
        if cert is not None:
            merged["cert"] = cert
        return merged

    def _relative(self, url: str) -> str:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Every request leaves through here (``request``, a prepared ``send``, each
        redirect): the protected target's rule is checked last, right before the socket."""
        if self.guard is not None:
            # a request with no method is no known read: refused like any write
            self.guard.check(request.method or "", self._relative(request.url or ""))
        return super().send(request, **kwargs)

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if url.startswith("/"):
            url = self.base_url + url
        # as requests itself: more positional arguments than it takes are an error
        for name, value in zip(_POSITIONAL[: len(args)], args, strict=True):
            kwargs[name] = value
        kwargs.setdefault("timeout", self.timeout)
        if self.trace is not None:  # a span per request; a caller's own trace header wins
            given = kwargs.get("headers")
            kwargs["headers"] = {**self.trace.headers(), **given} if given else self.trace.headers()
        if kwargs.get("params"):
            full = requests.PreparedRequest()
            full.prepare_url(url, kwargs["params"])
            path = self._relative(full.url or url)
        else:
            path = self._relative(url)
        request_body = kwargs.get("json")
        if request_body is None:
            request_body = kwargs.get("data")
        headers = {**self.headers, **(kwargs.get("headers") or {})}
        started = time.perf_counter()
        try:
            response = super().request(method, url, **kwargs)
        except ProtectedTargetError as refused:
            self._record(
                method, path, None, started, request_body, None, str(refused), headers, None, True
            )
            raise
        except requests.RequestException as error:
            self._record(method, path, None, started, request_body, None, str(error), headers)
            raise
        sent = response.request.headers if response.request is not None else headers
        # a json= (or bytes) body is shown as it went on the wire: the caller's object may
        # change after the request, the bytes sent cannot
        wire = response.request.body if response.request is not None else None
        sent_body = wire if isinstance(wire, bytes) else None
        self._record(
            method,
            path,
            response.status_code,
            started,
            request_body,
            response.content,
            "",
            sent,
            response.headers,
            sent_body=sent_body,
        )
        return response

    def _record(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        request_body: Any,
        response_body: Any,
        error: str,
        request_headers: Mapping[str, str] | None = None,
        response_headers: Mapping[str, str] | None = None,
        refused: bool = False,
        sent_body: bytes | None = None,
    ) -> None:
        latency = (time.perf_counter() - started) * 1000
        redactor = self.redactor
        request_data, response_data = _decode(request_body), _decode(response_body)
        redactor.learn(request_data)
        redactor.learn(response_data)
        redactor.learn(path)
        redactor.learn_headers(request_headers or {})
        redactor.learn_headers(response_headers or {})
        shown_path = redactor.url(path)
        exchange = Recorded(
            redactor,
            method.upper(),
            shown_path,
            status,
            latency,
            request_data if sent_body is None else sent_body,
            response_data,
            error,
            request_headers,
            response_headers,
        )
        with self._lock:
            self.transcript.entries.append(exchange)
            if not refused:  # nothing was sent: no latency to speak of
                self.latencies.append((method.upper(), shown_path, latency))
