"""Usage errors that name options by their field, spelt where they are shown.

The core does not know how an option is given: on the command line `output` is
`--output` and `baseline` is `BASELINE_DIR`; in the Python API they are the keywords
`output=` and `baseline=`. A core error names options as `{field}` in its message and
keeps every other value apart, so the CLI renders its flags (`UsageError.render`) and
`str()` renders the API's keywords. Values are inserted as they are, never read as a
template: a path may hold braces.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any, Self

#: How the Python API gives an option a message names, where that is not its keyword
#: alone: switches are turned on (or off) by a value, and a flag that takes a value
#: is named with it. Every other option is spelt as its field name.
API_SPELLING: dict[str, str] = {
    "backend_ray": "backend='ray'",
    "force": "force=True",
    "no_lpips": "no_lpips=True",
    "no_ocr_cache": "no_ocr_cache=True",
    "no_typography": "typography=False",
    "overwrite": "overwrite=True",
    "resume": "resume=True",
    "typography": "typography=True",
}


class _Spelled(dict[str, Any]):
    """The values of a message, with every other name spelt as an option."""

    def __init__(self, values: dict[str, Any], spell: Callable[[str], str]) -> None:
        super().__init__(values)
        self._spell = spell

    def __missing__(self, key: str) -> str:
        return self._spell(key)


class UsageError(Exception):
    """A usage or configuration problem (exit code 2): nothing was done.

    Build one from a template naming options by field (`about`) or from plain text (the
    constructor: a message from elsewhere, which names no option).

    Attributes:
        template: The message with options as `{field}`; None for plain text.
        values: The other values the template inserts.
    """

    #: The options a message may name; None: any name not among the values.
    options: frozenset[str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.template: str | None = None
        self.values: dict[str, Any] = {}

    @classmethod
    def about(cls, template: str, /, **values: Any) -> Self:
        """An error whose message names options as `{field}` and values as `{name}`,
        with `values` holding the values (format specs such as `{n:,}` and `{x!r}` work).

        Raises:
            ValueError: The template names something that is neither a value nor one of
                `options` (a misspelt name would otherwise be shown as an option).
        """
        error = cls(template)
        error.template, error.values = template, values
        unknown = [f for f in error.fields if cls.options is not None and f not in cls.options]
        if unknown:
            raise ValueError(f"{cls.__name__} template names {', '.join(unknown)}: neither a value nor an option")
        error.args = (str(error),)  # repr() and args read as str() does
        return error

    @classmethod
    def from_error(cls, exc: BaseException) -> Self:
        """`exc`'s message as this class of error, its options still named by field when
        `exc` is a `UsageError` (a lower layer's error re-raised as a command's)."""
        if not isinstance(exc, UsageError) or exc.template is None:
            return cls(str(exc))
        error = cls(exc.template)
        error.template, error.values = exc.template, dict(exc.values)
        error.args = (str(error),)
        return error

    @property
    def fields(self) -> tuple[str, ...]:
        """The options the message names, in order."""
        if self.template is None:
            return ()
        names = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return tuple(dict.fromkeys(n for n in names if n not in self.values))

    def render(self, spell: Callable[[str], str]) -> str:
        """The message with each option spelt by `spell` (field name -> how it is given)."""
        if self.template is None:
            return str(self.args[0]) if self.args else ""
        return string.Formatter().vformat(self.template, (), _Spelled(self.values, spell))

    def spell(self, field: str) -> str:
        """How the Python API gives an option: its keyword (`API_SPELLING`)."""
        return API_SPELLING.get(field, field)

    def __str__(self) -> str:
        return self.render(self.spell)


__all__ = ["API_SPELLING", "UsageError"]
