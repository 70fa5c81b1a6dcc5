"""app.json's predeploy: runs in the new image before the release phase; what it writes stays in the image."""

import os
from pathlib import Path

print(f"predeploy of {os.environ.get('PAAS_RELEASE')}", flush=True)
Path("predeploy.test").write_text(f"written by the predeploy of {os.environ.get('PAAS_RELEASE')}\n")
