"""An app with no Kafka trigger, for worker-pool tests: importing it leaves a mark where STREAMINGPOC_TEST_MARKS
names, so a test knows the worker imported it and went on to wait for the host's stop."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()

if marks := os.environ.get("STREAMINGPOC_TEST_MARKS"):
    (Path(marks) / uuid.uuid4().hex).touch()
