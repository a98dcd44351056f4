"""A Kafka cluster for the tests: librdkafka's built-in mock cluster, driven through ctypes.

No Kafka can run here; librdkafka (Debian's librdkafka1) carries a mock cluster that speaks enough
of the protocol for producers, consumer groups and offset commits, on localhost listeners, with
brokers that can be taken down and errors that can be injected. Standard library only.

    python3 test/integration/kafka-mock.py [brokers]

It prints one JSON line, {"bootstraps": "127.0.0.1:port,..."}, then reads one JSON command per
line on stdin and answers each, in order, with one JSON line, {"ok": true, ...} or
{"ok": false, "error": "..."}:

    {"op": "create_topic", "topic": "t", "partitions": 4, "replication": 1}
    {"op": "broker_down", "id": 1}      {"op": "broker_up", "id": 1}
    {"op": "all_down"}                  {"op": "all_up"}
    {"op": "push_errors", "api": 0, "errors": [6, 6]}   (api 0 = Produce)
    {"op": "clear_errors", "api": 0}
    {"op": "ping"}

End of stdin or SIGTERM destroys the cluster and exits 0. The C signatures are those of
librdkafka 2.0's rdkafka_mock.h (an experimental API, not covered by its ABI guarantees).
"""
import ctypes
import json
import signal
import sys

RD_KAFKA_PRODUCER = 0
RD_KAFKA_CONF_OK = 0

lib = ctypes.CDLL("librdkafka.so.1")


def declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


c_void_p, c_char_p, c_int, c_int16, c_int32, c_size_t = (
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int16, ctypes.c_int32, ctypes.c_size_t)

# rd_kafka_resp_err_t and rd_kafka_type_t are C enums: int.
rd_kafka_conf_new = declare("rd_kafka_conf_new", c_void_p)
rd_kafka_conf_set = declare("rd_kafka_conf_set", c_int, c_void_p, c_char_p, c_char_p, c_char_p, c_size_t)
rd_kafka_conf_destroy = declare("rd_kafka_conf_destroy", None, c_void_p)
rd_kafka_new = declare("rd_kafka_new", c_void_p, c_int, c_void_p, c_char_p, c_size_t)
rd_kafka_destroy = declare("rd_kafka_destroy", None, c_void_p)
rd_kafka_err2str = declare("rd_kafka_err2str", c_char_p, c_int)
rd_kafka_mock_cluster_new = declare("rd_kafka_mock_cluster_new", c_void_p, c_void_p, c_int)
rd_kafka_mock_cluster_destroy = declare("rd_kafka_mock_cluster_destroy", None, c_void_p)
rd_kafka_mock_cluster_bootstraps = declare("rd_kafka_mock_cluster_bootstraps", c_char_p, c_void_p)
rd_kafka_mock_topic_create = declare("rd_kafka_mock_topic_create", c_int, c_void_p, c_char_p, c_int, c_int)
rd_kafka_mock_broker_set_down = declare("rd_kafka_mock_broker_set_down", c_int, c_void_p, c_int32)
rd_kafka_mock_broker_set_up = declare("rd_kafka_mock_broker_set_up", c_int, c_void_p, c_int32)
# const rd_kafka_resp_err_t *errors: an array of int (the enum), not of int16.
rd_kafka_mock_push_request_errors_array = declare(
    "rd_kafka_mock_push_request_errors_array", None, c_void_p, c_int16, c_size_t, ctypes.POINTER(c_int))
rd_kafka_mock_clear_request_errors = declare("rd_kafka_mock_clear_request_errors", None, c_void_p, c_int16)


class Failed(Exception):
    pass


def check(err):
    if err != 0:
        raise Failed(f"{rd_kafka_err2str(err).decode()} ({err})")


def new_handle():
    errstr = ctypes.create_string_buffer(512)
    conf = rd_kafka_conf_new()
    # The handle only hosts the cluster (it never produces): its own logs would be noise.
    for name, value in ((b"log_level", b"3"),):
        if rd_kafka_conf_set(conf, name, value, errstr, len(errstr)) != RD_KAFKA_CONF_OK:
            rd_kafka_conf_destroy(conf)
            raise Failed(errstr.value.decode())
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
    if not rk:
        rd_kafka_conf_destroy(conf)  # rd_kafka_new owns conf only when it succeeds
        raise Failed(f"rd_kafka_new: {errstr.value.decode()}")
    return rk


def command(mcluster, brokers, cmd):
    op = cmd.get("op")
    if op == "ping":
        return {}
    if op == "create_topic":
        topic = cmd.get("topic")
        if not isinstance(topic, str) or topic == "":
            raise Failed("create_topic needs a topic")
        partitions, replication = int(cmd.get("partitions", 4)), int(cmd.get("replication", 1))
        if partitions < 1 or replication < 1:
            raise Failed("partitions and replication must be at least 1")  # the mock would take 0 partitions
        check(rd_kafka_mock_topic_create(mcluster, topic.encode(), partitions, replication))
        return {}
    if op in ("broker_down", "broker_up"):
        set_state = rd_kafka_mock_broker_set_down if op == "broker_down" else rd_kafka_mock_broker_set_up
        broker_id = int(cmd["id"])
        if not 1 <= broker_id <= brokers:
            raise Failed(f"no broker {broker_id}: the brokers are 1..{brokers}")
        check(set_state(mcluster, broker_id))
        return {}
    if op in ("all_down", "all_up"):
        set_state = rd_kafka_mock_broker_set_down if op == "all_down" else rd_kafka_mock_broker_set_up
        for broker_id in range(1, brokers + 1):
            check(set_state(mcluster, broker_id))
        return {}
    if op == "push_errors":
        errors = [int(e) for e in cmd.get("errors", [])]
        array = (c_int * len(errors))(*errors)
        rd_kafka_mock_push_request_errors_array(mcluster, int(cmd.get("api", 0)), len(errors), array)
        return {"pushed": len(errors)}
    if op == "clear_errors":
        rd_kafka_mock_clear_request_errors(mcluster, int(cmd.get("api", 0)))
        return {}
    raise Failed(f"unknown op {op!r}")


def answer(result):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main():
    brokers = int(sys.argv[1]) if len(sys.argv) > 1 else 3

    def stop(*_):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)

    rk = new_handle()
    mcluster = None
    try:
        mcluster = rd_kafka_mock_cluster_new(rk, brokers)
        if not mcluster:
            raise Failed("rd_kafka_mock_cluster_new failed")
        answer({"bootstraps": rd_kafka_mock_cluster_bootstraps(mcluster).decode()})
        while True:
            line = sys.stdin.readline()
            if line == "":
                break
            if line.strip() == "":
                continue
            try:
                cmd = json.loads(line)
                if not isinstance(cmd, dict):
                    raise Failed("a command is a JSON object")
                answer({"ok": True, **command(mcluster, brokers, cmd)})
            except KeyError as exc:
                answer({"ok": False, "error": f"missing field {exc}"})
            except (Failed, ValueError, TypeError) as exc:
                answer({"ok": False, "error": str(exc) or type(exc).__name__})
    finally:
        # Once cleaning up, a second SIGTERM must not interrupt it halfway.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if mcluster:
            rd_kafka_mock_cluster_destroy(mcluster)
        rd_kafka_destroy(rk)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
