"""The sandbox's Kafka bus: a real Apache Kafka broker and a schema registry, both JVMs.

``jars`` fetches their jars from Maven Central with the pinned Maven files beside it (into
the user's cache, once); ``jvm`` runs a Java child that cannot outlive the sandbox; ``broker``
is a single-node KRaft broker in a temporary folder; ``registry`` is Apicurio Registry in
memory with its Confluent-compatible API; ``processor`` is the local Kafka event-source
mapping that feeds the service's Kafka handler. Imported only when ``--bus kafka`` is asked
for: the SNS/SQS sandbox needs neither Java nor ``confluent-kafka``.
"""
