"""Config files for tests: a subscribers.yaml as a dict, pointing at the loopback servers."""

from __future__ import annotations

from typing import Any

# Real recordings: the relevance-sorted "testing" query (2026), the
# electron/proton query in the new layout with rel-less links (2025-11), and
# a legacy page with hard-wrapped abstracts and LaTeX (2017).
CORPUS = (
    "api_new_2026-04_all-testing_start-0_max-10.xml",
    "api_new_2025-11_search_electron-AND-proton_10-entries_links-without-rel.xml",
    "api_legacy_2017-08_cat-OR-query_10-entries.xml",
)


def config_dict(
    arxiv_url: str,
    smtp_port: int = 25,
    subscribers: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "settings": {
            "database": "digest.json",
            "arxiv": {
                "api_url": arxiv_url,
                "request_interval": 0.01,
                "timeout": 5,
                "page_size": 10,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "from": "Daily Papers <papers@digest.test>",
                "timeout": 5,
            },
        },
        "subscribers": subscribers
        if subscribers is not None
        else [
            {
                "email": "alice@example.org",
                "name": "Alice",
                "keywords": ["deep learning", "proton"],
            },
            {"email": "bob@example.org", "keywords": ["metamorphic testing", "electron"]},
        ],
    }
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(base["settings"].get(key), dict):
            base["settings"][key].update(value)
        else:
            base["settings"][key] = value
    return base
