"""The embedded broker transport through kombu, and its crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from kombu import Connection, Exchange, Queue

from mailpipe.broker import embedded_transport
from mailpipe.broker.embedded_transport import BrokerDir


def conn(tmp_path):
    embedded_transport.register()
    return Connection("spool://", transport_options={"data_dir": str(tmp_path)})


def test_publish_consume_ack(tmp_path):
    q = Queue("smtp_in", Exchange("mailpipe", type="direct"), routing_key="smtp_in")
    with conn(tmp_path) as c:
        producer = c.Producer()
        for i in range(3):
            producer.publish({"n": i}, exchange=q.exchange, routing_key="smtp_in", declare=[q])
        assert BrokerDir(tmp_path / "broker").size("smtp_in") == 3
        got = []
        with c.SimpleQueue(q) as simple:
            for _ in range(3):
                message = simple.get(timeout=2)
                got.append(message.payload["n"])
                assert BrokerDir(tmp_path / "broker").inflight_count("smtp_in") == 1
                message.ack()
        assert got == [0, 1, 2]                                   # FIFO
    broker = BrokerDir(tmp_path / "broker")
    assert broker.size("smtp_in") == 0 and broker.inflight_count("smtp_in") == 0


def test_reject_with_requeue_puts_it_back(tmp_path):
    with conn(tmp_path) as c:
        with c.SimpleQueue("route") as simple:
            simple.put({"x": 1})
            message = simple.get(timeout=2)
            message.requeue()
            again = simple.get(timeout=2)
            assert again.payload == {"x": 1}
            again.ack()


CLAIMER = """
import sys, time
from kombu import Connection
from mailpipe.broker import embedded_transport
embedded_transport.register()
with Connection("spool://", transport_options={"data_dir": sys.argv[1]}) as c:
    with c.SimpleQueue("local") as q:
        m = q.get(timeout=5)
        print("claimed", flush=True)
        time.sleep(60)
"""


def test_messages_claimed_by_a_killed_process_come_back(tmp_path):
    with conn(tmp_path) as c:
        with c.SimpleQueue("local") as simple:
            simple.put({"qid": "A"})
    proc = subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path)], stdout=subprocess.PIPE,
                            cwd=os.getcwd())
    assert proc.stdout.readline().strip() == b"claimed"
    broker = BrokerDir(tmp_path / "broker")
    assert broker.size("local") == 0 and broker.inflight_count("local") == 1
    assert broker.recover_dead("local") == 0                     # owner alive: left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert broker.recover_dead("local") == 1
    with conn(tmp_path) as c:
        with c.SimpleQueue("local") as simple:
            message = simple.get(timeout=2)
            assert message.payload == {"qid": "A"}
            message.ack()


def test_an_empty_queue_is_not_relisted_but_a_new_message_is_seen(tmp_path):
    with conn(tmp_path) as c:
        with c.SimpleQueue("rules") as simple:
            channel = simple.channel
            ready = str(BrokerDir(tmp_path / "broker").ready("rules"))
            old = os.stat(ready).st_mtime_ns - 10**9                     # as if last changed a second ago
            os.utime(ready, ns=(old, old))
            assert len(channel._list("rules", ready)) == 0
            assert channel._empty_at["rules"] == old                     # stable and empty: cached
            simple.put({"n": 1})                                         # changes the folder's mtime
            message = simple.get(timeout=2)
            assert message.payload == {"n": 1}
            message.ack()


def test_acked_files_are_recycled_by_the_next_publish(tmp_path):
    """Ack renames the file into spare/ and publish reuses it: no file is deleted or created."""
    q = Queue("smtp_in", Exchange("mailpipe", type="direct"), routing_key="smtp_in")
    broker = BrokerDir(tmp_path / "broker")
    with conn(tmp_path) as c:
        producer = c.Producer()
        producer.publish({"n": "a long first payload " * 20}, exchange=q.exchange, routing_key="smtp_in",
                         declare=[q])
        (first,) = os.listdir(broker.ready("smtp_in"))
        inode = os.stat(broker.ready("smtp_in") / first).st_ino
        with c.SimpleQueue(q) as simple:
            simple.get(timeout=2).ack()
            spares = os.listdir(broker.spare)
            assert len(spares) == 1 and os.stat(broker.spare / spares[0]).st_ino == inode
            publisher = BrokerDir(tmp_path / "broker")          # another process's view (the ingress)
            publisher.put("smtp_in", b'{"short": 1}')
            assert os.listdir(broker.spare) == []
            (second,) = os.listdir(broker.ready("smtp_in"))
            path = broker.ready("smtp_in") / second
            assert os.stat(path).st_ino == inode                  # the same file, emptied and rewritten
            assert path.read_bytes() == b'{"short": 1}'
