"""What a run tells people and machines: the JSON report, latency, the Markdown summary, the
self-contained HTML report, event timelines and alerts — all redacted before they leave.
"""
