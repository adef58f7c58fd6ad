"""librdkafka's repeated log lines are shown once, everything else passes through."""
from __future__ import annotations

from agentstream.cli.kafka_log_quiet import QuietKafkaLog, message_key

REFUSED = [
    b"%3|1796529777.530|FAIL|rdkafka#consumer-5| [thrd:127.0.0.1:51155/bootstrap]: 127.0.0.1:51155/bootstrap: Connect to ipv4#127.0.0.1:51155 failed: Connection refused (after 0ms in state CONNECT)\n",
    b"%3|1796529777.586|FAIL|rdkafka#consumer-5| [thrd:127.0.0.1:51155/bootstrap]: 127.0.0.1:51155/bootstrap: Connect to ipv4#127.0.0.1:51155 failed: Connection refused (after 3ms in state CONNECT)\n",
    b"%3|1796529778.642|FAIL|rdkafka#consumer-5| [thrd:127.0.0.1:51155/bootstrap]: 127.0.0.1:51155/bootstrap: Connect to ipv4#127.0.0.1:51155 failed: Connection refused (after 0ms in state CONNECT, 1 identical error(s) suppressed)\n",
]


def test_repeats_of_one_message_are_shown_once():
    q = QuietKafkaLog()
    shown = [q.filter_line(line) for line in REFUSED * 50]
    assert [s for s in shown if s is not None] == [REFUSED[0]]
    assert q.suppressed == 149


def test_other_lines_and_other_messages_pass():
    q = QuietKafkaLog()
    other = b"%6|1796529796.722|BGQUEUE|rdkafka#producer-1| [thrd:background]: Purging 1 unserved events from background queue\n"
    plain = [b"Traceback (most recent call last):\n", b"agentstream: no alerts yet\n", b"%not a kafka line\n"]
    for line in REFUSED[:1] + [other] + plain + plain:
        assert q.filter_line(line) == line
    assert message_key(plain[0]) is None and q.suppressed == 0


def test_one_broker_gone_is_one_message_whichever_thread_notices():
    threads = [
        b"%3|1796557247.918|FAIL|rdkafka#consumer-1| [thrd:GroupCoordinator]: GroupCoordinator: 127.0.0.1:53665: Connect to ipv4#127.0.0.1:53665 failed: Connection refused (after 0ms in state CONNECT)\n",
        b"%3|1796557247.918|FAIL|rdkafka#consumer-1| [thrd:127.0.0.1:53665/111]: 127.0.0.1:53665/111: Connect to ipv4#127.0.0.1:53665 failed: Connection refused (after 0ms in state CONNECT)\n",
        REFUSED[0],
    ]
    q = QuietKafkaLog()
    assert [q.filter_line(x) for x in threads] == [threads[0], None, None]
    other = b"%6|1796557247.918|FAIL|rdkafka#consumer-1| [thrd:GroupCoordinator]: GroupCoordinator: 127.0.0.1:53665: Disconnected: connection closed by peer (after 10386ms in state UP)\n"
    assert q.filter_line(other) == other  # another message still shows
