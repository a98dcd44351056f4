"""A Marty microservices framework service's consumer (seed 002), as the framework's Python teams
write one, with confluent_kafka.

The framework's EventPublisher (`_publish_event`) writes each event to Kafka as a JSON envelope,
`{"metadata": {"event_id", "timestamp", "service_name", "service_version", "correlation_id",
"user_id", "trace_id", "priority", ...}, "event_type": ..., "payload": {...}}`, keyed with a UTF-8
string: the resource_id of an audit event, the recipient_type of a notification, the aggregate_id
of a domain event. This consumer is in a consumer group (KAFKA_GROUP_ID), reads the topics in
KAFKA_TOPICS (comma-separated) from KAFKA_BROKERS, from the earliest offset, and commits each
record once it has handled it (auto commit off). It decodes the envelope and dispatches on
`envelope["event_type"]`; the handlers read `metadata.event_id`, `metadata.service_name`,
`metadata.correlation_id` and `payload`. A record it cannot decode, or one without those fields, is
a lost event: it is said on stderr and printed as `{"malformed": ...}`, then committed, as the
framework's consumers do (it would otherwise be read again forever). A record of an event_type
nobody handles is committed and dropped, said on stderr and printed as `{"unhandled": ...}`.

Each record handled is printed as one JSON line, with its topic, partition, offset, key and headers,
so that you (and the gateway's tests) can see what arrived; `{"ready": true}` is printed first, once
the group has assigned partitions to it. SIGTERM closes the consumer (leaving the group) and exits.

    KAFKA_BROKERS=localhost:9092 KAFKA_GROUP_ID=audit-service \\
    KAFKA_TOPICS=marty.audit.events,marty.notification.events python3 examples/consumers/marty_consumer.py
"""
import json
import os
import signal
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException

# Seed 002's event types (the gateway's catalog: src/catalog/platform.ts).
AUDIT_EVENT_TYPES = [
    "user_login", "user_logout", "permission_denied",
    "data_created", "data_updated", "data_deleted", "data_accessed",
    "certificate_issued", "certificate_revoked", "security_violation",
    "service_started", "service_error", "configuration_changed",
]
NOTIFICATION_EVENT_TYPES = [
    "user_welcome", "user_password_reset", "user_account_locked",
    "certificate_expiring", "certificate_expired",
    "system_maintenance", "system_alert",
]


class Malformed(Exception):
    pass


def decode(value):
    if value is None:
        raise Malformed("no value (a tombstone)")
    try:
        envelope = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"not a JSON envelope: {exc}")
    if not isinstance(envelope, dict):
        raise Malformed("the envelope is not an object")
    metadata = envelope.get("metadata")
    if not isinstance(metadata, dict):
        raise Malformed("metadata is missing")
    for field in ("event_id", "service_name"):
        if not isinstance(metadata.get(field), str):
            raise Malformed(f"metadata.{field} is missing")
    if "correlation_id" not in metadata:
        raise Malformed("metadata.correlation_id is missing")
    if not isinstance(envelope.get("event_type"), str):
        raise Malformed("event_type is missing")
    if not isinstance(envelope.get("payload"), dict):
        raise Malformed("payload is missing")
    return envelope


class EventConsumer:
    def __init__(self, brokers, group_id, topics):
        self.topics = topics
        self.handlers = {}
        self.domain_handler = None
        self.running = True
        self.ready = False
        self.consumer = Consumer({
            "bootstrap.servers": brokers,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })

    def register_handler(self, event_type, handler):
        self.handlers[event_type] = handler

    def register_domain_handler(self, handler):
        # Domain events' types are each aggregate's own (user_created, order_shipped, ...): their
        # payload says which aggregate they are about.
        self.domain_handler = handler

    def handler_for(self, envelope):
        handler = self.handlers.get(envelope["event_type"])
        if handler is None and "aggregate_id" in envelope["payload"]:
            handler = self.domain_handler
        return handler

    def on_assign(self, consumer, partitions):
        if not self.ready:
            self.ready = True
            print(json.dumps({"consumer": "marty", "ready": True,
                              "assigned": [[p.topic, p.partition] for p in partitions]}), flush=True)

    def run(self):
        self.consumer.subscribe(self.topics, on_assign=self.on_assign)
        try:
            while self.running:
                message = self.consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    if message.error().fatal():
                        raise KafkaException(message.error())
                    print(f"consumer error: {message.error()}", file=sys.stderr, flush=True)
                    continue
                self.handle(message)
                self.consumer.commit(message=message, asynchronous=False)
        finally:
            self.consumer.close()

    def handle(self, message):
        record = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "key": message.key().decode("utf-8", "replace") if message.key() is not None else None,
            "headers": {name: (value.decode("utf-8", "replace") if value is not None else None)
                        for name, value in (message.headers() or [])},
        }
        try:
            envelope = decode(message.value())
        except Malformed as exc:
            print(f"malformed record at {record['topic']}/{record['partition']}@{record['offset']}: {exc}",
                  file=sys.stderr, flush=True)
            print(json.dumps({"consumer": "marty", "malformed": str(exc), **record}), flush=True)
            return
        handler = self.handler_for(envelope)
        if handler is None:
            print(f"no handler for event_type {envelope['event_type']!r}: committed and dropped", file=sys.stderr, flush=True)
            print(json.dumps({"consumer": "marty", "unhandled": envelope["event_type"], **record}), flush=True)
            return
        handler(envelope, record)

    def stop(self):
        self.running = False


def print_event(kind):
    def handle(envelope, record):
        metadata = envelope["metadata"]
        print(json.dumps({
            "consumer": f"marty {kind}",
            **record,
            "event_type": envelope["event_type"],
            "event_id": metadata["event_id"],
            "service_name": metadata["service_name"],
            "correlation_id": metadata["correlation_id"],
            "payload": envelope["payload"],
        }), flush=True)
    return handle


def main():
    topics = [topic.strip() for topic in os.environ["KAFKA_TOPICS"].split(",") if topic.strip()]
    consumer = EventConsumer(
        brokers=os.environ.get("KAFKA_BROKERS", "localhost:9092"),
        group_id=os.environ.get("KAFKA_GROUP_ID", "marty-consumer"),
        topics=topics,
    )
    for event_type in AUDIT_EVENT_TYPES:
        consumer.register_handler(event_type, print_event("audit"))
    for event_type in NOTIFICATION_EVENT_TYPES:
        consumer.register_handler(event_type, print_event("notification"))
    consumer.register_domain_handler(print_event("domain"))
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    consumer.run()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
