"""Sample worker: prints one known line, then keeps working."""

import os
import time

print(f"worker from formation-json started ({os.environ.get('HOSTNAME', '?')})", flush=True)
while True:
    time.sleep(60)
