"""Events: the transport interface and the per-test assertions (``stream``), the SNS/SQS and
Kafka transports, contracts and the schema registry (``contracts``), and queue quiescence.
"""
