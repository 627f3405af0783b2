"""The integration's Django settings, read when used (Django must be set up)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ... import const
from ...brokers.base import Broker
from ..settings import broker_from_setting

#: Where the real e-mails go when ``SPINACH_ACTUAL_EMAIL_BACKEND`` is not set.
DEFAULT_ACTUAL_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

_WHERE = "the Django settings"


def broker() -> Broker:
    """The broker ``SPINACH_BROKER`` names; ``ImproperlyConfigured`` naming it if unusable."""
    try:
        return broker_from_setting(getattr(settings, "SPINACH_BROKER", None), "SPINACH_BROKER",
                                   _WHERE)  # fmt: skip
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def namespace() -> str:
    return getattr(settings, "SPINACH_NAMESPACE", const.DEFAULT_NAMESPACE)


def actual_email_backend() -> str:
    return getattr(settings, "SPINACH_ACTUAL_EMAIL_BACKEND", DEFAULT_ACTUAL_EMAIL_BACKEND)


def clear_sessions_periodicity() -> timedelta | None:
    value = getattr(settings, "SPINACH_CLEAR_SESSIONS_PERIODICITY", None)
    if value is not None and not (isinstance(value, timedelta) and value > timedelta(0)):
        raise ImproperlyConfigured(
            f"SPINACH_CLEAR_SESSIONS_PERIODICITY in {_WHERE} must be None or a positive "
            f"timedelta, not {value!r}"
        )
    return value
