"""Sample worker: no web framework and no port; prints a line now and then (it runs as a `worker` process)."""

import time

count = 0
while True:
    count += 1
    print(f"hello from python-worker, tick {count}", flush=True)
    time.sleep(2)
