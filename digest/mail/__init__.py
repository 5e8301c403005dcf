"""Mail out: a message's bytes (the email package) and SMTP delivery (aiosmtplib)."""

from __future__ import annotations

from digest.mail.mime import alternative
from digest.mail.smtp import Item, Mailer, Outcome

__all__ = [
    "Item",
    "Mailer",
    "Outcome",
    "alternative",
]
