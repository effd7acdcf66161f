"""Issue 23, item 5: the deployed build in every report — from the identity answer's
``version``, else from the route the profile names (``version_path``), over real HTTP on
loopback; a route that cannot be read is a warning, never a stop."""

from __future__ import annotations

from harness.config import Profile
from harness.reporting import alerts, summary
from harness.reporting.html_report import run_section
from harness.reporting.report import RunReport
from harness.safety.preflight import service_version
from tests.unit.loopback import loopback


def test_the_identity_answer_names_the_version_first() -> None:
    profile = Profile(name="x", base_url="http://127.0.0.1:9", version_path="/version")
    assert service_version(profile, {"environment": "x", "version": "1.2.3"}) == "1.2.3"


def test_else_the_profiles_route_names_it_as_json_or_text() -> None:
    warnings: list[str] = []
    with loopback() as server:
        server.route("/version", 200, {"version": "2026.01.5", "commit": "abc"})
        server.route("/build", 200, b"build-77\nmore\n")
        server.route("/broken", 503, {"error": "x"})
        profile = Profile(name="x", base_url=server.url, identity="none", version_path="/version")
        assert service_version(profile, {"identity": "none"}) == "2026.01.5"
        text = Profile(name="x", base_url=server.url, version_path="/build")
        assert service_version(text, {}) == "build-77"
        broken = Profile(name="x", base_url=server.url, version_path="/broken")
        assert service_version(broken, {}, warn=warnings.append) == ""
        assert service_version(Profile(name="x", base_url=server.url), {}) == ""
        asked = [r.path for r in server.received]
    assert warnings and "no service version" in warnings[0]
    assert asked == ["/version", "/build", "/broken"]  # no route named: nothing asked


def test_every_report_names_it() -> None:
    report = RunReport("itest-20260101t000000-abcd", "staging", "staging", "https://x", 1)
    report.service_version = "2026.01.5"
    report.target = {"events_bus": "kafka", "events_topic": "user-events"}
    report.event_seen = {"user.created": [0.010, 0.020, 0.030]}
    shown = report.as_dict(0)
    assert shown["service_version"] == "2026.01.5"
    assert "version 2026.01.5" in summary.render(shown)
    assert "(version 2026.01.5)" in alerts.headline(shown)
    html = run_section(shown)
    assert "<th>service version</th><td>2026.01.5</td>" in html
    assert "kafka (topic user-events); user.created seen p50 20 ms / p95 30 ms (n=3)" in html
