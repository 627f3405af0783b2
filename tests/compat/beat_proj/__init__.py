"""Projects run by the beat command in tests/compat/test_beat_schedulers.py."""
