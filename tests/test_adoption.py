"""Prompt adoption: a process that starts serving takes over dead workers' spools at once, without
waiting for an event of its own; a preforked child starts its own worker at once too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from django.test import override_settings
from eventtrail import delivery

from tests.support.app_process import crash_with_spooled, script
from tests.support.receivers import TcpReceiver, free_port
from tests.test_delivery import FAST, drafts, tcp_spool

# A server process as gunicorn or uwsgi makes one: the WSGI application is built (the middleware
# loaded), and no request comes.
SERVE = r"""
from django.core.handlers.wsgi import WSGIHandler
application = WSGIHandler()
print("serving", flush=True)
time.sleep(120)
"""


def test_a_server_that_starts_adopts_dead_spools_before_any_request(tmp_path):
    port = free_port()
    crash_with_spooled(tcp_spool(port, tmp_path), 500)
    receiver = TcpReceiver(port).start()
    config = {**tcp_spool(port, tmp_path), "FLUSH_INTERVAL": 0.2}
    server = subprocess.Popen([sys.executable, "-c", script(config, SERVE)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "serving"
        # No request, so no event of its own: the dead worker's 500 arrive anyway.
        assert receiver.received.wait_for(500, timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        receiver.stop()
    ids = receiver.received.ids()
    assert len(ids) == len(set(ids)) == 500


@pytest.mark.real_delivery
def test_a_preforked_child_of_a_serving_process_starts_its_own_worker_at_once(tmp_path):
    receiver = TcpReceiver().start()
    delivery.shutdown(5)
    config = {**FAST, "SINK": "logstash-tcp", "LOGSTASH_HOSTS": [f"tcp://127.0.0.1:{receiver.port}"],
              "SPOOL": True, "SPOOL_DIR": str(tmp_path)}
    try:
        with override_settings(EVENTTRAIL=config):
            parent = delivery.start()
            assert parent is not None and parent.thread is not None
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.alarm(60)
                    mine = delivery._handoff  # what the fork left, before any event
                    alive = (mine is not None and mine is not parent and mine.pid == os.getpid()
                             and mine.thread is not None and mine.thread.is_alive())
                    for d in drafts(10, start=500):
                        delivery.handoff().put(d)
                    code = 0 if alive and delivery.handoff() is mine and mine.flush(30) else 1
                    delivery.shutdown(5)
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
            delivery.shutdown(5)
        assert receiver.received.wait_for(10, timeout=30)
    finally:
        receiver.stop()
    assert sorted(d["url"]["path"] for d in receiver.received.docs) == [
        f"/p/{i}" for i in range(500, 510)]


@pytest.mark.real_delivery
def test_a_fork_of_a_process_whose_worker_never_started_starts_nothing(tmp_path):
    """A management command, a task runner's pool: no worker until the first event."""
    delivery.shutdown(5)
    with override_settings(EVENTTRAIL={**FAST, "SPOOL_DIR": str(tmp_path)}):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if delivery._handoff is None else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
