"""Mail out: a message's bytes (the email package), its templates (Jinja2), SMTP (aiosmtplib)."""

from __future__ import annotations

from digest.mail.mime import alternative
from digest.mail.smtp import Item, Mailer, Outcome
from digest.mail.templates import forget_templates, render_template, shipped_templates

__all__ = [
    "Item",
    "Mailer",
    "Outcome",
    "alternative",
    "forget_templates",
    "render_template",
    "shipped_templates",
]
