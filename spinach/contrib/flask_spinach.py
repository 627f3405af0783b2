"""Upstream Spinach's module name for the Flask extension: ``spinach.contrib.flask``."""

from .flask import Spinach

__all__ = ["Spinach"]
