"""Draft Genie's Python EventConsumer (seed 004), as its guide writes it, with aio-pika.

It consumes a service queue bound to the `draft-genie.events` topic exchange, parses each message
as JSON and dispatches on `event_data["event_type"]`; a message no handler is registered for is
acked and dropped, silently, as the guide's consumer does. The handlers below read what seed 004's
Python services read (`event_id`, `event_type`, `aggregate_id`, `aggregate_type`, `correlation_id`,
`payload`) and print it as one JSON line, so that you (and the gateway's tests) can see what
arrived. Configuration is the guide's: RABBITMQ_URL, RABBITMQ_EXCHANGE and the queue variables.

    python3 examples/consumers/draft_genie_consumer.py speaker draft rag evaluation
"""
import asyncio
import json
import os
import sys

import aio_pika

QUEUES = {
    "speaker": (os.environ.get("SPEAKER_QUEUE", "speaker.events"), "speaker.*"),
    "draft": (os.environ.get("DRAFT_QUEUE", "draft.events"), "draft.*"),
    "rag": (os.environ.get("RAG_QUEUE", "rag.events"), "rag.*"),
    "evaluation": (os.environ.get("EVALUATION_QUEUE", "evaluation.events"), "evaluation.*"),
}


class EventConsumer:
    def __init__(self, rabbitmq_url, queue_name, routing_key, exchange_name="draft-genie.events", prefetch_count=10):
        self.rabbitmq_url = rabbitmq_url
        self.queue_name = queue_name
        self.routing_key = routing_key
        self.exchange_name = exchange_name
        self.prefetch_count = prefetch_count
        self.handlers = {}
        self.connection = None
        self.channel = None
        self.queue = None

    async def connect(self):
        self.connection = await aio_pika.connect_robust(self.rabbitmq_url)
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.prefetch_count)
        exchange = await self.channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        self.queue = await self.channel.declare_queue(self.queue_name, durable=True)
        await self.queue.bind(exchange, routing_key=self.routing_key)

    def register_handler(self, event_type, handler):
        self.handlers[event_type] = handler

    async def start(self):
        async with self.queue.iterator() as queue_iter:
            async for message in queue_iter:
                async with message.process():
                    event_data = json.loads(message.body.decode())
                    handler = self.handlers.get(event_data.get("event_type"))
                    if handler is None:
                        # The guide's consumer: no handler, nothing to do; the message is acked.
                        # (Said on stderr here, so that a lost event shows.)
                        print(f"no handler for event_type {event_data.get('event_type')!r}: acked and dropped", file=sys.stderr, flush=True)
                        continue
                    await handler(event_data)

    async def disconnect(self):
        if self.connection is not None:
            await self.connection.close()


def print_event(family):
    async def handle(event_data):
        print(json.dumps({
            "consumer": f"draft-genie python {family}",
            "event_id": event_data["event_id"],
            "event_type": event_data["event_type"],
            "aggregate_id": event_data["aggregate_id"],
            "aggregate_type": event_data["aggregate_type"],
            "correlation_id": event_data["correlation_id"],
            "version": event_data["version"],
            "timestamp": event_data["timestamp"],
            "payload": event_data["payload"],
        }), flush=True)
    return handle


HANDLED = {
    "speaker": ["speaker.onboarded", "speaker.updated", "speaker.bucket_reassigned"],
    "draft": ["draft.ingested", "draft.correction_vector_created", "draft.correction_vector_updated"],
    "rag": ["rag.dfn_generated"],
    "evaluation": ["evaluation.started", "evaluation.completed", "evaluation.failed"],
}


async def consume(family):
    queue_name, routing_key = QUEUES[family]
    consumer = EventConsumer(
        rabbitmq_url=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/"),
        queue_name=queue_name,
        routing_key=routing_key,
        exchange_name=os.environ.get("RABBITMQ_EXCHANGE", "draft-genie.events"),
    )
    await consumer.connect()
    for event_type in HANDLED[family]:
        consumer.register_handler(event_type, print_event(family))
    print(json.dumps({"consumer": f"draft-genie python {family}", "ready": queue_name}), flush=True)
    try:
        await consumer.start()
    finally:
        await consumer.disconnect()


async def main():
    # One service per family, as Draft Genie runs them; here in one process for the example.
    await asyncio.gather(*(consume(family) for family in (sys.argv[1:] or ["speaker"])))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
