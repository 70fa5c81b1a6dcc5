"""app.json's command check of the worker: run in the worker's container, it passes by exiting 0."""

import os

assert os.environ.get("PAAS_PROCESS_TYPE") == "worker", os.environ.get("PAAS_PROCESS_TYPE")
