"""Reads Kafka topics as they are, for the gateway's Kafka tests: one JSON line per record.

A consumer in a group (KAFKA_GROUP_ID) on the comma-separated KAFKA_TOPICS of the cluster at
KAFKA_BROKERS, from the earliest offset, committing each record once printed. Prints
{"ready": true} once it has its partitions, then for each record its topic, partition, offset,
key, headers (UTF-8 text) and value (UTF-8 text, unparsed). SIGTERM ends it.
"""
import json
import os
import signal
import sys

from confluent_kafka import Consumer, KafkaException

running = True


def stop(_signum, _frame):
    global running
    running = False


def text(raw):
    return None if raw is None else raw.decode("utf-8", errors="replace")


def main():
    signal.signal(signal.SIGTERM, stop)
    consumer = Consumer({
        "bootstrap.servers": os.environ["KAFKA_BROKERS"],
        "group.id": os.environ["KAFKA_GROUP_ID"],
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })

    def assigned(_consumer, partitions):
        print(json.dumps({"ready": True, "assigned": len(partitions)}), flush=True)

    consumer.subscribe(os.environ["KAFKA_TOPICS"].split(","), on_assign=assigned)
    try:
        while running:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                print(json.dumps({"error": str(msg.error())}), file=sys.stderr, flush=True)
                continue
            print(json.dumps({
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": text(msg.key()),
                "headers": {name: text(value) for name, value in (msg.headers() or [])},
                "value": text(msg.value()),
            }), flush=True)
            consumer.commit(message=msg, asynchronous=False)
    except KafkaException as err:
        print(json.dumps({"error": str(err)}), file=sys.stderr, flush=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
