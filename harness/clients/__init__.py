"""The clients the harness hands out: HTTP (``http``, recorded and redacted), AWS (``aws``, boto3
with botocore's retries) and auth strategies (``auth``).
"""
