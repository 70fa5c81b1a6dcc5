"""The release phase: runs once in the new image before the release goes live; a failure keeps the old one."""

import os
import sys

FAIL = False

print(f"release phase of {os.environ.get('PAAS_RELEASE')}", flush=True)
if FAIL:
    print("release phase failed on purpose", flush=True)
    sys.exit(3)
