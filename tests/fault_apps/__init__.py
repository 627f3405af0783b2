"""Applications the process-fault tests (tests/test_process_faults.py) run in worker
subprocesses, as ``python -m spinach worker tests.fault_apps.app:spin``.

They take their Redis URL, namespace and tunables from environment variables and record
every run of their tasks in Redis, so a test can count runs from outside the workers.
"""
