"""Events between services: a transactional outbox publishing to NATS
JetStream, durable idempotent consumers, dead letters and their replay.

- `headers`: the one spelling of every header (imports nothing of ours).
- `bus`: the JetStream connection and the stream (created and kept to its limits).
- `outbox`: `enqueue()` in the producer's transaction; `OutboxRelay` publishes.
- `inbox`: the table of event ids a service has applied.
- `consumers`: `EventConsumer`, a durable pull consumer applying each event once.
- `dead_letters`: where a message goes after its last failed delivery.
- `replay`: `python -m fabula_common.messaging.replay`, the operator's command
  that re-publishes dead letters to their original subject.

This module imports nothing, so importing `fabula_common.messaging.headers`
(the gateway does) pulls in neither NATS nor SQLAlchemy.
"""
