"""Run the migrated project in one process: start workers, send tasks, print results, stop.

``python run.py`` uses the in-process memory broker; ``BROKER_URL=redis://localhost:6379/0
python run.py`` uses a local Redis. In production the workers run as their own processes
(``spinach-compat -A proj worker``, see the Procfile) and ``produce.py`` sends the tasks.
"""

import os
import sys

os.environ.setdefault("BROKER_URL", "memory://")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from produce import main as produce
from proj import app


def main() -> None:
    print(f"broker: {app.conf.broker_url}, namespace: {app.namespace}")
    app.loader.import_default_modules()  # what the worker command does first
    app.start_worker(concurrency=4, block=False)
    try:
        produce()
    finally:
        app.stop_worker()
    print("workers stopped")


if __name__ == "__main__":
    main()
