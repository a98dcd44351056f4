"""A consumer of protected fields, for the gateway's field protection test: written as the seeds
write theirs (pika, the blocking client: it declares its topic exchange and a durable queue bound
to it, reads the body's JSON fields, acks), opening what it reads with the recipe of
docs/protection.md, imported from RECIPE (the test writes the doc's ```python block there, as it
is: a wrong recipe fails the test).

For each message it prints one JSON line: the envelope's id, type and tenant (`tenantid`), the
routing key, the raw body and headers, the data as it came, and for every `evg:v1:` string at the
top of the data (by its pointer, `/transcript`):
  - `opened`: the recipe's decrypt() with the event's tenant, type and pointer;
  - `as_other_tenant`: the same with the first of PROBE_TENANTS that is not the event's tenant;
  - `tampered`: the same with the last byte (the tag's) of the sealed value with one bit flipped;
each the value, or {"error": "<module>.<exception>"} when it does not open. And for the join an
analytics team makes on hashed fields: `hashes`, the recipe's hashed() of each of KNOWN_VALUES (its
own list of clear values) for the event's tenant with each secret, by key id then value; `joined`,
per 64-hex field of the data, the known value and key id it is the hash of (null when none).

    RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ EXCHANGE=analytics.events QUEUE=analytics \
    RECIPE=/tmp/recipe.py PROTECTION_SECRETS='{"k1": "<base64>"}' KNOWN_VALUES='["+15551234567"]' \
    PROBE_TENANTS='["9b2d4f1e-3c5a-4e7b-8d9f-0a1b2c3d4e5f"]' python3 test/integration/protection-consumer.py
"""
import base64
import importlib.util
import json
import os
import re
import sys

import pika

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/")
EXCHANGE = os.environ["EXCHANGE"]
QUEUE = os.environ["QUEUE"]
BINDING = os.environ.get("BINDING", "#")
NAME = os.environ.get("CONSUMER", QUEUE)
SECRETS = json.loads(os.environ["PROTECTION_SECRETS"])
KNOWN_VALUES = json.loads(os.environ.get("KNOWN_VALUES", "[]"))
PROBE_TENANTS = json.loads(os.environ.get("PROBE_TENANTS", "[]"))
HASHED = re.compile(r"^[0-9a-f]{64}$")


def load_recipe(path):
    spec = importlib.util.spec_from_file_location("evg_protection_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = load_recipe(os.environ["RECIPE"])


def attempt(open_it):
    try:
        return open_it()
    except Exception as exc:  # what does not open is reported, not fatal
        return {"error": f"{type(exc).__module__}.{type(exc).__name__}"}


def tamper(value):
    """The same value with one bit of its last byte (the GCM tag's) flipped."""
    prefix, payload = value.rsplit(":", 1)
    sealed = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    sealed[-1] ^= 0x01
    return f"{prefix}:{base64.urlsafe_b64encode(bytes(sealed)).decode().rstrip('=')}"


def read(event):
    tenant, event_type, data = event["tenantid"], event["type"], event["data"]
    other = next((p for p in PROBE_TENANTS if p != tenant), None)
    opened, as_other_tenant, tampered = {}, {}, {}
    for field, value in data.items():
        if isinstance(value, str) and value.startswith("evg:v1:"):
            pointer = "/" + field.replace("~", "~0").replace("/", "~1")
            opened[pointer] = attempt(lambda: recipe.decrypt(value, SECRETS, tenant, event_type, pointer))
            if other is not None:
                as_other_tenant[pointer] = attempt(lambda: recipe.decrypt(value, SECRETS, other, event_type, pointer))
            tampered[pointer] = attempt(lambda: recipe.decrypt(tamper(value), SECRETS, tenant, event_type, pointer))
    hashes = {key_id: {v: recipe.hashed(v, secret, tenant) for v in KNOWN_VALUES} for key_id, secret in SECRETS.items()}
    joined = {}
    for field, value in data.items():
        if isinstance(value, str) and HASHED.match(value):
            found = [(v, k) for k, table in hashes.items() for v, h in table.items() if h == value]
            joined["/" + field] = {"value": found[0][0], "key": found[0][1]} if found else None
    return {
        "opened": opened, "as_other_tenant": as_other_tenant, "probe_tenant": other, "tampered": tampered,
        "hashes": hashes, "joined": joined,
    }


def main():
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key=BINDING)

    def callback(ch, method, properties, body):
        try:
            event = json.loads(body)
            line = {
                "consumer": NAME,
                "id": event["id"],
                "type": event["type"],
                "tenant": event["tenantid"],
                "routing_key": method.routing_key,
                "body": body.decode("utf-8"),
                "headers": properties.headers or {},
                "data": event["data"],
                **read(event),
            }
            print(json.dumps(line, default=str), flush=True)
        except Exception as exc:
            print(f"{NAME}: could not read a message: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_consume(queue=QUEUE, on_message_callback=callback)
    print(json.dumps({"consumer": NAME, "ready": QUEUE}), flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        channel.stop_consuming()
    connection.close()


if __name__ == "__main__":
    main()
