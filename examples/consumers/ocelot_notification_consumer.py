"""Ocelot's Notification module (seed 003): alerts a supervisor when a call's sentiment score is
below -0.5, from `event["data"]["score"]`, `event["data"]["call_id"]` and
`event["organizationId"]`, subscribed to `comms.sentiment.analyzed`. Written with pika, the
blocking client, as a module without an event loop would be. Each event it reads is printed as one
JSON line, with the alert it would send. OCELOT_EXCHANGE and NOTIFICATION_QUEUE rename the
exchange and queue (tests use names of their own).

    python3 examples/consumers/ocelot_notification_consumer.py
"""
import json
import os

import pika

EXCHANGE = os.environ.get("OCELOT_EXCHANGE", "ocelot.events")
QUEUE = os.environ.get("NOTIFICATION_QUEUE", "notification_sentiment")


def send_alert(alert):
    print(json.dumps({"consumer": "notification", "alert": alert}), flush=True)


def on_sentiment_analyzed(event):
    """Send alert on negative sentiment"""
    if event["data"]["score"] < -0.5:
        send_alert({
            "type": "negative_sentiment",
            "priority": "high",
            "call_id": event["data"]["call_id"],
            "sentiment_score": event["data"]["score"],
            "organizationId": event["organizationId"],
            "message": "Negative sentiment detected on active call - consider intervention"
        })


def main():
    connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/")))
    channel = connection.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="comms.sentiment.analyzed")

    def callback(ch, method, properties, body):
        event = json.loads(body)
        print(json.dumps({
            "consumer": "notification",
            "id": event["id"],
            "type": event["type"],
            "organizationId": event["organizationId"],
            "userId": event["userId"],
            "data": event["data"],
        }), flush=True)
        on_sentiment_analyzed(event)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_consume(queue=QUEUE, on_message_callback=callback)
    print(json.dumps({"consumer": "notification", "ready": QUEUE}), flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        channel.stop_consuming()
    connection.close()


if __name__ == "__main__":
    main()
