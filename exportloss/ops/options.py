"""Option objects: frozen dataclasses whose values are checked once, when the object is made.

Each family writes its options once, as a subclass of :class:`Options` (``NMSOptions``,
``AssignOptions``, ``MatchOptions``, ``OverlapOptions``): the keyword functions build one, the modules
store one as ``module.options``, and the float64 references read the same object by field name.
``__post_init__`` raises the one-line error naming the field and stores normalised values (floats as
``float``, defaults resolved), so two objects that behave alike compare equal.

Types come first, for every subclass at once, from the field annotations (:meth:`Options._check_field_types`):
a ``bool`` field takes only ``True`` or ``False`` (``"false"`` is not False), an ``int`` field only an int
that is not a bool (``max_det=True`` is not 1), a ``float`` field only a real number that is not a bool, a
``str`` field only a string; each refusal is a one-line ``TypeError`` naming the field.

The keyword functions default every option keyword to :data:`DEFAULT` ("not given"), so
:meth:`Options.resolve` knows which keywords the caller wrote: an explicit keyword together with
``options=`` is an error even when it equals the field's default.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from typing import Any, TypeVar

OptionsT = TypeVar("OptionsT", bound="Options")


class _Default:
    """The type of :data:`DEFAULT`."""

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""The signature default of a keyword function's option keywords: "not given, use the option's default"
(the value is the options dataclass's field default, documented there and in the function's docstring)."""


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the option dataclasses; subclasses declare their fields ``kw_only`` and check them in ``__post_init__``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Run the annotation type checks before each subclass's own ``__post_init__``."""
        super().__init_subclass__(**kwargs)
        own_post_init = cls.__dict__.get("__post_init__")
        if own_post_init is None:
            return

        @functools.wraps(own_post_init)
        def post_init(self: Options) -> None:
            if type(self).__post_init__ is post_init:  # the most derived check runs the type checks, once
                self._check_field_types()
            own_post_init(self)

        cls.__post_init__ = post_init

    def _check_field_types(self) -> None:
        """The one-line ``TypeError`` of the first field whose value does not have its annotated type.

        ``bool`` fields take only ``True``/``False``; an ``int`` is never a ``bool``; a ``float`` field takes any
        real number but a ``bool``; a field annotated with several types (``int | str``) takes any of them.
        """
        for field in dataclasses.fields(self):
            kinds = _annotated_kinds(type(self), field.name)
            value = getattr(self, field.name)
            if value is None and type(None) in kinds:
                continue
            if bool in kinds:
                if not isinstance(value, bool):
                    raise TypeError(f"{field.name} must be True or False; got {value!r}")
                continue
            checked = [kind for kind in (int, float, str) if kind in kinds]
            if checked and not any(_has_kind(value, kind) for kind in checked):
                described = " or ".join(_KIND_NAMES[kind] for kind in checked)
                raise TypeError(f"{field.name} must be {described}{' or None' if type(None) in kinds else ''}; got {value!r}")

    @classmethod
    def resolve(cls: type[OptionsT], options: OptionsT | None, **keywords: Any) -> OptionsT:
        """``options`` when given (then no keyword may be given), else ``cls(**keywords)``.

        A keyword whose value is :data:`DEFAULT` counts as not given. Functions pass all their keyword
        options (defaulting to :data:`DEFAULT`), modules only the ones given; either way a caller gives a
        prepared object or keywords, never both, so no value is silently dropped: ``iou_thr=0.5`` with
        ``options=NMSOptions(iou_thr=0.3)`` is an error although 0.5 is the default.
        """
        given = {name: value for name, value in keywords.items() if value is not DEFAULT}
        if options is None:
            return cls(**given)
        if not isinstance(options, cls):
            raise TypeError(f"options must be a {cls.__name__} or None; got {type(options).__name__}")
        if given:
            raise ValueError(f"give options or the keyword options ({', '.join(given)}), not both")
        return options

    def _normalise(self, **values: Any) -> None:
        """Store checked values on the frozen instance (only from ``__post_init__``)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def fields_repr(self) -> str:
        """``name=value, ...`` of every field: the modules' ``extra_repr``."""
        return ", ".join(f"{field.name}={getattr(self, field.name)!r}" for field in dataclasses.fields(self))


_KIND_NAMES = {int: "an int", float: "a number", str: "a string"}


def _has_kind(value: Any, kind: type) -> bool:
    """``value`` is a ``kind``: bools are neither ints nor numbers here; an int is a number."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


@functools.cache
def _annotated_kinds(cls: type, name: str) -> frozenset[type]:
    """The plain types a field's annotation admits (``int | None`` -> {int, NoneType}); empty for generics."""
    hint = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))[name]
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    return frozenset(member for member in members if member in (bool, int, float, str, type(None)))


_UnionType = type(int | None)
