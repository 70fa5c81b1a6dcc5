"""Sample worker (and cron) process: prints one known line, then keeps working."""

import sys
import time

print(f"{sys.argv[1]} from procfile-dev started", flush=True)
while True:
    time.sleep(60)
