"""Route templates and exact percentiles, however the samples are split among workers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.reporting import latency


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/health", "/health"),
        ("/users/4503599627370495", "/users/{id}"),
        ("/users/12/notifications?limit=5", "/users/{id}/notifications"),
        ("/orders/3f2b8c1e-9d4a-4c2b-8e7f-0a1b2c3d4e5f/items", "/orders/{id}/items"),
        ("/blobs/deadbeefcafebabe0123", "/blobs/{id}"),
        ("/sessions/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "/sessions/{id}"),
        ("/users/me/settings", "/users/me/settings"),
        ("/notifications-processor", "/notifications-processor"),
        ("/", "/"),
        ("http://other.example.test/users/7", "/users/{id}"),
    ],
)
def test_route_template(path: str, template: str) -> None:
    assert latency.route_template(path) == template


def test_collect_groups_by_method_and_template() -> None:
    samples = latency.collect(
        [("get", "/users/1", 10.0), ("GET", "/users/2", 30.0), ("POST", "/users", 5.0)]
    )
    assert samples == {"GET /users/{id}": [10.0, 30.0], "POST /users": [5.0]}


def test_percentiles_are_nearest_rank_over_real_samples() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    (row,) = latency.summarize({"GET /x": values})
    assert (row["count"], row["p50_ms"], row["p95_ms"], row["max_ms"]) == (100, 50.0, 95.0, 100.0)


def test_slowest_p95_first() -> None:
    rows = latency.summarize({"GET /fast": [1.0, 2.0], "GET /slow": [50.0, 90.0], "GET /e": []})
    assert [r["route"] for r in rows] == ["/slow", "/fast"]


@given(
    st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=4),
)
def test_merging_worker_samples_is_exact(values: list[float], workers: int) -> None:
    merged: latency.Samples = {}
    for worker in range(workers):
        latency.merge(merged, {"GET /x": values[worker::workers]})
    assert latency.summarize(merged) == latency.summarize({"GET /x": values})
