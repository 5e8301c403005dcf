"""After delivery: prune the store and rewrite the Daily Papers page.

Housekeeping never changes a cycle's outcome: the mail went out and was
recorded before it starts, so a failure here (an unwritable
``settings.archive``, a full disk) is logged for the operator and the cycle
still counts as done (``digest check`` tests that both paths are writable).
"""

from __future__ import annotations

import logging
from datetime import datetime

from digest.compose import archive
from digest.errors import DigestError
from digest.matching import PaperIndex
from digest.models import Config
from digest.store import Store

log = logging.getLogger(__name__)


def tidy(config: Config, store: Store, now: datetime, index: PaperIndex | None = None) -> bool:
    """Prune, then write the page; False (and a logged error) when either failed.

    ``index`` is the cycle's (its papers normalised once), reused for the page.
    """
    try:
        # one selection serves both: pruning keeps exactly what the page shows
        keywords = archive.keywords_in_order(config.subscribers)
        selection = archive.select(keywords, store.papers(), index)
        liked = {x.arxiv_id for s in config.subscribers for x in s.likes if x.arxiv_id}
        store.prune(now, keep=archive.kept_ids(selection) | liked)
        # fold the cycle's delivery journal into the database file: one rewrite
        # per cycle, whatever the number of messages (the journal kept each
        # acceptance durable as it happened)
        store.checkpoint()
        if config.settings.archive is not None:
            archive.write_atomic(config.settings.archive, archive.render_selection(selection, now))
    except DigestError as exc:
        log.error("housekeeping after the cycle failed (the deliveries stand): %s", exc)
        return False
    except Exception:  # a bug here must not undo a delivered cycle either
        log.exception("housekeeping after the cycle crashed (the deliveries stand)")
        return False
    return True
