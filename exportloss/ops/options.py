"""Option objects: frozen dataclasses whose values are checked once, when the object is made.

Each family writes its options once, as a subclass of :class:`Options` (``NMSOptions``,
``AssignOptions``, ``MatchOptions``, ``OverlapOptions``): the keyword functions build one, the modules
store one as ``module.options``, and the float64 references read the same object by field name.
``__post_init__`` raises the one-line error naming the field and stores normalised values (floats as
``float``, defaults resolved), so two objects that behave alike compare equal.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

OptionsT = TypeVar("OptionsT", bound="Options")


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the option dataclasses; subclasses declare their fields ``kw_only`` and check them in ``__post_init__``."""

    @classmethod
    def resolve(cls: type[OptionsT], options: OptionsT | None, **keywords: Any) -> OptionsT:
        """``options`` when given (then every keyword must be at its field's default), else ``cls(**keywords)``.

        Functions pass all their keyword options, modules only the ones given; either way a caller gives a
        prepared object or keywords, never both, so no value is silently dropped.
        """
        if options is None:
            return cls(**keywords)
        if not isinstance(options, cls):
            raise TypeError(f"options must be a {cls.__name__} or None; got {type(options).__name__}")
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        changed = [name for name, value in keywords.items() if name not in defaults or value != defaults[name]]
        if changed:
            raise ValueError(f"give options or the keyword options ({', '.join(changed)}), not both")
        return options

    def _normalise(self, **values: Any) -> None:
        """Store checked values on the frozen instance (only from ``__post_init__``)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def fields_repr(self) -> str:
        """``name=value, ...`` of every field: the modules' ``extra_repr``."""
        return ", ".join(f"{field.name}={getattr(self, field.name)!r}" for field in dataclasses.fields(self))
