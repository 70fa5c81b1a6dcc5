"""Sample worker process: prints one known line, then keeps working."""

import time

print("worker from procfile-worker started", flush=True)
while True:
    time.sleep(60)
