"""Seed 001's event flow check (scripts/verify_event_flow.py, EventFlowVerifier), reading what the
batch pipeline's rule `capture-transcripts-rule` delivers from the default bus to its SQS queue,
with boto3: EventBridge's event, whose `source` must be `com.yourapp.transcription`, its
`detail-type` `BatchProcessingCompleted`, and its `detail` the pipeline's event structure
(`version`, `interaction_id`, `tenant_id`, `user_id`, `account_id`, `timestamp`, `status`,
`data.cleaned_transcript`, `data.raw_transcript`). Each event that passes is printed as one JSON
line (never the transcripts: their lengths) and deleted; one that does not is reported on stderr
and left in the queue. Runs until stopped.

    CAPTURE_QUEUE_URL=http://127.0.0.1:4566/000000000000/capture-transcripts python3 examples/consumers/verify_event_flow.py
"""
import json
import os
import signal
import sys
from datetime import datetime

import boto3

REQUIRED = ("version", "interaction_id", "tenant_id", "user_id", "account_id", "timestamp", "status", "data")


class EventFlowVerifier:
    def __init__(self, queue_url):
        self.queue_url = queue_url
        self.sqs = boto3.client(
            "sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), region_name=os.environ.get("AWS_REGION", "eu-central-1")
        )

    def validate(self, event):
        problems = []
        if event.get("source") != "com.yourapp.transcription":
            problems.append(f"source is {event.get('source')!r}")
        if event.get("detail-type") != "BatchProcessingCompleted":
            problems.append(f"detail-type is {event.get('detail-type')!r}")
        detail = event.get("detail")
        if not isinstance(detail, dict):
            return problems + ["no detail"]
        problems += [f"detail.{f} is missing" for f in REQUIRED if f not in detail]
        if detail.get("version") != "1.0":
            problems.append("detail.version is not 1.0")
        if detail.get("status") != "completed":
            problems.append("detail.status is not completed")
        data = detail.get("data")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("cleaned_transcript", "raw_transcript")):
            problems.append("detail.data lacks the transcripts")
        try:
            datetime.fromisoformat(str(detail.get("timestamp")).replace("Z", "+00:00"))
        except ValueError:
            problems.append("detail.timestamp is not a time")
        return problems

    def poll(self):
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            event = json.loads(message["Body"])
            problems = self.validate(event)
            if problems:
                print(f"event structure is not valid: {'; '.join(problems)}", file=sys.stderr, flush=True)
                continue
            detail = event["detail"]
            print(json.dumps({
                "consumer": "verify-event-flow",
                "source": event["source"],
                "detail_type": event["detail-type"],
                "version": detail["version"],
                "interaction_id": detail["interaction_id"],
                "tenant_id": detail["tenant_id"],
                "user_id": detail["user_id"],
                "account_id": detail["account_id"],
                "timestamp": detail["timestamp"],
                "status": detail["status"],
                "cleaned_transcript_length": len(detail["data"]["cleaned_transcript"]),
                "raw_transcript_length": len(detail["data"]["raw_transcript"]),
            }), flush=True)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def main():
    verifier = EventFlowVerifier(os.environ["CAPTURE_QUEUE_URL"])
    running = True

    def stop(*_):
        nonlocal running
        running = False
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"consumer": "verify-event-flow", "ready": verifier.queue_url}), flush=True)
    while running:
        verifier.poll()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
