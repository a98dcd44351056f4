"""The survey email worker (seed 000, REQ-016) reading survey outcomes from the FIFO queue with
boto3, as the seed's publisher (REQ-015) wrote them: a flat JSON body, `event_id`, `event_type`,
`timestamp`, `campaign_id`, `contact_id`, `call_id` and the type's own fields at the top
(`answers`; `refusal_reason`; `total_attempts`, `last_outcome`), and the String attribute
`event_type`. What it cannot parse it deletes as malformed, as the seed's worker does. Each event
it handles is printed as one JSON line, with the email it would send.

    SURVEYS_QUEUE_URL=http://127.0.0.1:4566/000000000000/survey-events.fifo python3 examples/consumers/survey_email_worker.py

boto3 1.26 (Debian's) does not read AWS_ENDPOINT_URL: the worker passes it as endpoint_url.
"""
import json
import os
import signal
import sys
from datetime import datetime

import boto3

FIELDS = {
    "survey.completed": {"answers": list},
    "survey.refused": {},
    "survey.not_reached": {"total_attempts": int, "last_outcome": str},
}


class Malformed(Exception):
    pass


def parse(body, attributes):
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise Malformed(f"not JSON: {exc}")
    if not isinstance(event, dict):
        raise Malformed("not an object")
    event_type = event.get("event_type")
    if event_type not in FIELDS:
        raise Malformed(f"unknown event_type {event_type!r}")
    if attributes.get("event_type", {}).get("StringValue") != event_type:
        raise Malformed("the event_type attribute does not match the body")
    for field in ("event_id", "campaign_id", "contact_id", "call_id", "timestamp"):
        if not isinstance(event.get(field), str):
            raise Malformed(f"{field} is missing")
    datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    for field, kind in FIELDS[event_type].items():
        if not isinstance(event.get(field), kind):
            raise Malformed(f"{field} is missing or not a {kind.__name__}")
    return event


def email_for(event):
    if event["event_type"] == "survey.completed":
        return {"template": "thank_you", "answers": len(event["answers"])}
    if event["event_type"] == "survey.refused":
        return {"template": "sorry_to_bother", "reason": event.get("refusal_reason")}
    return {"template": "missed_you", "attempts": event["total_attempts"], "last_outcome": event["last_outcome"]}


def main():
    queue_url = os.environ["SURVEYS_QUEUE_URL"]
    sqs = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), region_name=os.environ.get("AWS_REGION", "eu-central-1"))
    running = True

    def stop(*_):
        nonlocal running
        running = False
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"consumer": "survey-email-worker", "ready": queue_url}), flush=True)
    while running:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["MessageGroupId"], MessageAttributeNames=["All"])
        for message in answer.get("Messages", []):
            try:
                event = parse(message["Body"], message.get("MessageAttributes", {}))
                print(json.dumps({
                    "consumer": "survey-email-worker",
                    "event_id": event["event_id"],
                    "event_type": event["event_type"],
                    "timestamp": event["timestamp"],
                    "campaign_id": event["campaign_id"],
                    "contact_id": event["contact_id"],
                    "call_id": event["call_id"],
                    "answers": event.get("answers"),
                    "refusal_reason": event.get("refusal_reason"),
                    "total_attempts": event.get("total_attempts"),
                    "last_outcome": event.get("last_outcome"),
                    "message_group_id": message.get("Attributes", {}).get("MessageGroupId"),
                    "attributes": {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()},
                    "email": email_for(event),
                }), flush=True)
            except Malformed as exc:
                print(f"deleted as malformed: {exc}", file=sys.stderr, flush=True)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
