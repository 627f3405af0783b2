"""Settings read by ``config_from_object`` in the tests."""

task_default_queue = "from-module"
