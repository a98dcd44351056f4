"""Ocelot's Focus-Lite planning module (seed 003), consuming call.ended as the seed writes it, with
aio-pika: it declares `ocelot.events` (topic, durable) and the durable queue `focus_lite_calls`
bound with `comms.call.ended`, and creates a follow-up task when the outcome is
`callback_requested`, from `event["data"]`, `event["organizationId"]` and `event["userId"]`.
Each event it reads is printed as one JSON line, with the task it would create.
OCELOT_EXCHANGE and FOCUS_LITE_QUEUE rename the exchange and queue (tests use names of their own).

    python3 examples/consumers/focus_lite_consumer.py
"""
import asyncio
import json
import os

import aio_pika

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@localhost/")
EXCHANGE = os.environ.get("OCELOT_EXCHANGE", "ocelot.events")
QUEUE = os.environ.get("FOCUS_LITE_QUEUE", "focus_lite_calls")


async def create_task(task):
    print(json.dumps({"consumer": "focus-lite", "task": task}), flush=True)


async def setup_consumer():
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    channel = await connection.channel()

    exchange = await channel.declare_exchange(
        EXCHANGE,
        aio_pika.ExchangeType.TOPIC,
        durable=True
    )

    queue = await channel.declare_queue(QUEUE, durable=True)
    await queue.bind(exchange, routing_key="comms.call.ended")
    print(json.dumps({"consumer": "focus-lite", "ready": QUEUE}), flush=True)

    async with queue.iterator() as queue_iter:
        async for message in queue_iter:
            async with message.process():
                event = json.loads(message.body.decode())
                print(json.dumps({
                    "consumer": "focus-lite",
                    "id": event["id"],
                    "type": event["type"],
                    "organizationId": event["organizationId"],
                    "userId": event["userId"],
                    "data": event["data"],
                    "metadata": event["metadata"],
                }), flush=True)

                if event["data"]["outcome"] == "callback_requested":
                    # Create follow-up task automatically
                    await create_task({
                        "title": f"Call back customer from call {event['data']['call_id']}",
                        "priority": "high",
                        "due_date": "tomorrow",
                        "organizationId": event["organizationId"],
                        "userId": event["userId"]
                    })


if __name__ == "__main__":
    try:
        asyncio.run(setup_consumer())
    except KeyboardInterrupt:
        pass
