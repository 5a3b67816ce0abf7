"""A real Celery worker's app for the Broker conformance suite: mailpipe's Celery settings
for the broker kind under test, stage tasks that only record what they were given.

Run as ``celery -A tests.spine.celery_recorder worker`` with ``MPTEST_BROKER_URL``,
``MPTEST_DATA_DIR``, ``MPTEST_PREFIX``, ``MPTEST_QUEUE_TYPE`` and ``MPTEST_OUT`` (one JSON line per task run).
"""

from __future__ import annotations

import json
import os

from celery import Celery

from mailpipe.broker import QUEUE_STAGES, open_broker, task_name
from mailpipe.core.config import Config
from mailpipe.workers.app import celery_settings

config = Config(data_dir=os.environ["MPTEST_DATA_DIR"], broker_url=os.environ["MPTEST_BROKER_URL"],
                queue_prefix=os.environ["MPTEST_PREFIX"],
                broker={"queue_type": os.environ.get("MPTEST_QUEUE_TYPE", "classic")})
app = Celery("recorder", broker=config.broker_url, set_as_current=False)
app.conf.update(celery_settings(config, open_broker(config)))
OUT = os.environ["MPTEST_OUT"]


def _recorder(stage: str):
    def record(self, queue_id, redelivered=False):
        with open(OUT, "a", encoding="utf-8") as out:
            out.write(json.dumps([stage, queue_id, redelivered, self.request.id]) + "\n")
    return record


for _stage in QUEUE_STAGES:
    app.task(name=task_name(_stage), bind=True, acks_late=True)(_recorder(_stage))
