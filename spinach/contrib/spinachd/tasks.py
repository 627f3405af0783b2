"""The integration's own tasks: sending e-mails, clearing expired sessions."""

from __future__ import annotations

import logging
from importlib import import_module

from django.apps import apps
from django.conf import settings as django_settings
from django.core.mail import get_connection

from ...task import Tasks
from . import settings

logger = logging.getLogger(__name__)

tasks = Tasks()


@tasks.task(name="spinachd:send_emails")
def send_emails(messages: list[dict]) -> None:
    """Send e-mails serialized by ``BackgroundEmailBackend`` through the actual backend."""
    from .mail import deserialize_email_messages

    backend = settings.actual_email_backend()
    emails = deserialize_email_messages(messages)
    logger.info("Sending %d e-mail(s) through %s", len(emails), backend)
    get_connection(backend).send_messages(emails)


@tasks.task(name="spinachd:clear_expired_sessions",
            periodicity=settings.clear_sessions_periodicity())  # fmt: skip
def clear_expired_sessions() -> None:
    """Delete expired sessions, as ``manage.py clearsessions`` does."""
    if not apps.is_installed("django.contrib.sessions"):
        logger.info("django.contrib.sessions is not installed: no session to clear")
        return
    engine = import_module(django_settings.SESSION_ENGINE)
    try:
        engine.SessionStore.clear_expired()
    except NotImplementedError:
        logger.info(
            "session engine %s cannot clear expired sessions", django_settings.SESSION_ENGINE
        )
