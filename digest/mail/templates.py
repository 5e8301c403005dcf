"""The mail templates: where they are found, and the one Jinja2 set-up that renders them.

The only module that imports jinja2. The digest (``digest.compose``) and the
answers to readers' replies (``digest.replies``) both render here, so both
are overridable the same way: a template in the operator's
``settings.templates`` folder wins, the shipped one is used for the rest.
Autoescaping is on for ``.html`` templates only, and ``StrictUndefined``
everywhere, so a misspelt variable in an operator's template is an error
naming the template and line, never an empty string in a reader's mail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from digest.errors import TemplateError

# Entries in the ``wordwrap`` cache: a day's titles, author lists and
# abstracts, each wrapped once for all the readers of a cycle.
WORDWRAP_CACHE = 4096


def shipped_templates() -> Path:
    """The templates inside the installed package, or in the source tree."""
    package = Path(__file__).resolve().parent.parent  # digest/
    installed = package / "templates" / "email"
    return installed if installed.is_dir() else package.parent / "templates" / "email"


def render_template(templates: Path | None, name: str, context: Mapping[str, Any]) -> str:
    """Template ``name`` rendered with ``context``: ``templates`` (the operator's) first.

    Raises ``TemplateError`` naming the template and line.
    """
    try:
        return _environment(templates).get_template(name).render(context)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise TemplateError(
            f"template {where}{f', line {line}' if line else ''}: {exc.message or exc}"
        ) from exc


def forget_templates() -> None:
    """Drop the environments, their loaded templates and their ``wordwrap`` cache."""
    _environment.cache_clear()


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's environment, with ``p.title`` on a plain dict found without an exception.

    ``Environment.getattr`` tries ``getattr(obj, name)`` and then
    ``obj[name]``; on ``render_context``'s dicts the first always raises
    ``AttributeError`` (a thousand times a digest) unless ``name`` is one of
    ``dict``'s own attributes (a ``dict`` instance has no others). Looking
    the key up first in exactly the other cases gives the same value.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return super().getattr(obj, attribute)


@lru_cache(maxsize=8)
def _environment(override: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if override is not None:
        loaders.append(jinja2.FileSystemLoader(str(override)))
    loaders.append(jinja2.FileSystemLoader(str(shipped_templates())))
    env = _Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wordwrap"] = _cached_wordwrap(env.filters["wordwrap"])
    return env


def _cached_wordwrap(wordwrap: Callable[..., str]) -> Callable[..., str]:
    """Jinja's own ``wordwrap``, remembered per (text, options) for the cycle.

    The text template wraps every title, author list and abstract for every
    reader, and ``textwrap`` was the largest cost of a digest; the papers are
    the same for every reader. Only plain ``str`` input is cached (``Markup``
    hashes like its ``str`` but may wrap differently); the rest goes through.
    """

    @lru_cache(maxsize=WORDWRAP_CACHE, typed=True)  # typed: a width of True is not 1
    def wrapped(env: jinja2.Environment, s: str, *args: Any, **kwargs: Any) -> str:
        return wordwrap(env, s, *args, **kwargs)

    @jinja2.pass_environment
    def cached(env: jinja2.Environment, s: Any, *args: Any, **kwargs: Any) -> str:
        if type(s) is not str:
            return wordwrap(env, s, *args, **kwargs)
        return wrapped(env, s, *args, **kwargs)

    return cached
