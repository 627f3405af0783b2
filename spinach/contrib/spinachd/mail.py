"""``BackgroundEmailBackend``: e-mails sent by a job, carried in it as JSON (no pickle).

``EMAIL_BACKEND = "spinach.contrib.spinachd.mail.BackgroundEmailBackend"`` makes
``send_mail`` and friends schedule ``spinachd:send_emails``, which sends them through
``SPINACH_ACTUAL_EMAIL_BACKEND``. A message is carried as its fields: subject, body,
addresses, headers, HTML alternatives and attachments given as (name, content, type); one
that cannot be (a ``MIMEBase`` attachment, a custom message class) is refused before
anything is scheduled, naming it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend

_FIELDS = ("subject", "body", "from_email", "to", "cc", "bcc", "reply_to", "extra_headers")


class BackgroundEmailBackend(BaseEmailBackend):
    """Sends e-mails from a job of the project's engine."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        for message in email_messages:
            message.message()  # validates the headers now, in the caller
        serialized = serialize_email_messages(email_messages)
        from .apps import spin
        from .tasks import send_emails

        spin.schedule(send_emails, serialized)
        return len(email_messages)


def serialize_email_messages(messages: Sequence[EmailMessage]) -> list[dict]:
    """The messages as JSON-ready dicts; ``ValueError`` naming what cannot be carried."""
    return [_serialize(message) for message in messages]


def _serialize(message: EmailMessage) -> dict[str, Any]:
    if type(message) not in (EmailMessage, EmailMultiAlternatives):
        raise ValueError(
            f"BackgroundEmailBackend carries EmailMessage and EmailMultiAlternatives only, "
            f"not {type(message).__name__} (subject {message.subject!r})"
        )
    data: dict[str, Any] = {field: getattr(message, field) for field in _FIELDS}
    data["content_subtype"] = message.content_subtype
    data["alternatives"] = [list(a) for a in getattr(message, "alternatives", [])]
    data["attachments"] = [_attachment(message, a) for a in message.attachments]
    return data


def _attachment(message: EmailMessage, attachment: Any) -> list:
    if not isinstance(attachment, tuple):
        raise ValueError(
            f"BackgroundEmailBackend cannot carry the MIME attachment of the e-mail "
            f"{message.subject!r}: attach it as (filename, content, mimetype)"
        )
    name, content, mimetype = attachment
    if isinstance(content, bytes):
        return [name, {"base64": base64.b64encode(content).decode()}, mimetype]
    return [name, content, mimetype]


def deserialize_email_messages(messages: list[dict]) -> list[EmailMessage]:
    """The messages ``serialize_email_messages`` carried."""
    return [_deserialize(data) for data in messages]


def _deserialize(data: dict[str, Any]) -> EmailMessage:
    fields = {field: data[field] for field in _FIELDS if field != "extra_headers"}
    message = EmailMultiAlternatives(headers=data["extra_headers"], **fields)
    message.content_subtype = data["content_subtype"]
    for content, mimetype in data["alternatives"]:
        message.attach_alternative(content, mimetype)
    for name, content, mimetype in data["attachments"]:
        if isinstance(content, dict):
            content = base64.b64decode(content["base64"])
        message.attach(name, content, mimetype)
    return message
