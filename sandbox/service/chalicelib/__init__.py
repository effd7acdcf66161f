"""The reference service's library code (Chalice packages ``chalicelib/`` with the app).

Each module owns one concept: ``settings`` (configuration from the environment and the AWS
clients built from it), ``passwords`` (the KDF), ``validation`` (request bodies), ``store``
(the DynamoDB tables), ``auth`` (the token check), ``events`` (event contracts and
publishing), ``processing`` (what the queue consumer does with an event) and ``web``
(JSON responses and error mapping). Nothing here knows about the sandbox launcher or the
harness: this is "somebody else's service".
"""
