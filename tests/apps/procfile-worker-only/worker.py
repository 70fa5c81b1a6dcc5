"""Sample worker-only app: no web process, so no route; it prints a line now and then."""

import time

print("hello from procfile-worker-only: worker started", flush=True)
while True:
    time.sleep(60)
