"""A module that fails at import, like an app missing its configuration."""

raise RuntimeError("configuration missing: set APP_SETTINGS")
