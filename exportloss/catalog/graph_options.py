"""A catalog graph's options: what ``--option KEY=VALUE`` can set, read from the module the entry builds.

No family module declares its options twice: they are either the fields of the module's option object
(a :class:`~exportloss.ops.options.Options` dataclass kept as ``module.options``: ``NMSOptions``,
``OverlapOptions``, ...) or, for modules without one, the keyword parameters of its constructor whose
values it keeps under the same attribute name (``kind``, ``gamma``, ``reduction``, ``s``, ``m``, ...).
Setting options rebuilds the module through that same object or constructor, so every value is checked
by the code that checks it in Python (the one-line ``ValueError`` naming the field), and the module's
parameters (drawn from the catalog's seed) are carried over unchanged.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn

from ..ops.options import Options

_CHOICES = re.compile(r"must be one of (.+?); got")
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_INVALID_CHOICE = "\x00not-a-choice"


@dataclass(frozen=True)
class OptionSpec:
    """One settable option of a graph: its name, the catalog's value, its type as written, and what it accepts."""

    name: str
    value: Any
    annotation: str
    allowed: str
    """The choices of a string option (as the checking code lists them), else the option's documentation."""

    def parse(self, text: str) -> Any:
        """``text`` (the VALUE of ``--option KEY=VALUE``) as a value of this option's type; ``ValueError`` (one line) if none fits."""
        return parse_value(self.name, text, self.annotation)


def option_object(module: nn.Module) -> Options | None:
    options = getattr(module, "options", None)
    return options if isinstance(options, Options) else None


def option_values(module: nn.Module) -> dict[str, Any]:
    """``{option: current value}`` of ``module``: its option object's fields, else its constructor's kept keywords."""
    options = option_object(module)
    if options is not None:
        return {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    return {name: _plain(getattr(module, name)) for name in _keyword_parameters(type(module)) if hasattr(module, name)}


def option_specs(module: nn.Module) -> dict[str, OptionSpec]:
    """Every option of ``module`` with its current value, its annotation and what it accepts."""
    options = option_object(module)
    if options is not None:
        annotations = {field.name: str(field.type) for field in dataclasses.fields(options)}
        docs = _attribute_docs(type(options))
    else:
        parameters = _keyword_parameters(type(module))
        annotations = {name: str(p.annotation) if p.annotation is not inspect.Parameter.empty else "" for name, p in parameters.items()}
        docs = _argument_docs(type(module))
    specs = {}
    for name, value in option_values(module).items():
        annotation = annotations.get(name, "")
        allowed = _choices(module, name) if isinstance(value, str) else None
        specs[name] = OptionSpec(name, value, annotation, allowed or docs.get(name, ""))
    return specs


def configure(module: nn.Module, options: Mapping[str, Any]) -> nn.Module:
    """``module`` rebuilt with ``options`` set (the others at its current values), its parameters copied.

    Raises ``ValueError`` (one line) for an option the module does not have, and the module's own
    ``ValueError``/``TypeError`` for a value it refuses.
    """
    if not options:
        return module
    current = option_values(module)
    unknown = [name for name in options if name not in current]
    if unknown:
        raise ValueError(f"no option {', '.join(unknown)}; the options are {', '.join(current)}")
    existing = option_object(module)
    if existing is not None:
        rebuilt = _rebuild_with_options(module, dataclasses.replace(existing, **options))
    else:
        required = {name: _plain(getattr(module, name)) for name in _required_parameters(type(module))}
        rebuilt = type(module)(**required, **{**current, **options})
    # Parameters were drawn from the catalog's seed; buffers derive from the options and are rebuilt.
    with torch.no_grad():
        for name, parameter in rebuilt.named_parameters():
            parameter.copy_(module.get_parameter(name))
    return rebuilt


def parse_value(name: str, text: str, annotation: str) -> Any:
    """``text`` as a value of the type ``annotation`` names (``float``, ``int | None``, ``Sequence[float]``, ``str``, ...).

    A sequence is comma-separated (``0.5,0.75``); with a union such as ``float | Sequence[float]`` a value
    without a comma is the scalar.
    """
    members = _union_members(annotation)
    lowered = text.strip().lower()
    if "None" in members and lowered in ("none", "null"):
        return None
    if "bool" in members:
        if lowered in _BOOLEANS:
            return _BOOLEANS[lowered]
        raise ValueError(f"--option {name}: expected true or false; got {text!r}")
    sequence = next((m for m in members if re.match(r"(Sequence|tuple|list)\[", m)), None)
    if sequence is not None and ("," in text or not {"int", "float"} & set(members)):
        item_type = "int" if re.search(r"\bint\b", sequence) and "float" not in sequence else "float"
        return [parse_value(name, item, item_type) for item in text.split(",") if item.strip()]
    if "int" in members and re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    if "float" in members:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isnan(value):
            return value
    if "str" in members or not members:
        return text
    expected = " or ".join(m if m != "None" else "none" for m in members)
    raise ValueError(f"--option {name}: expected {expected}; got {text!r}")


def _union_members(annotation: str) -> list[str]:
    """``"float | Sequence[float] | None"`` -> ``["float", "Sequence[float]", "None"]`` (``|`` outside brackets)."""
    members, depth, start = [], 0, 0
    for i, char in enumerate(annotation):
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            members.append(annotation[start:i].strip())
            start = i + 1
    last = annotation[start:].strip()
    return [*members, last] if last else members


def _plain(value: Any) -> Any:
    """A constructor argument as the module kept it, as a plain value (a per-class weight buffer as a list)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _rebuild_with_options(module: nn.Module, options: Options) -> nn.Module:
    """A module of ``module``'s class made by the first constructor (along its classes) that takes an option object.

    Subclasses such as ``DiceLoss(mode, jaccard=...)`` translate their own keywords into the object; the
    object is already complete here, so it goes to the constructor that takes it as it is.
    """
    for cls in type(module).__mro__:
        init = cls.__dict__.get("__init__")
        parameter = inspect.signature(init).parameters.get("options") if init else None
        if parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            rebuilt = type(module).__new__(type(module))
            init(rebuilt, options=options)
            return rebuilt
    raise TypeError(f"{type(module).__name__} keeps an option object but no constructor takes one")


def _keyword_parameters(cls: type) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p for name, p in parameters.items()
            if name != "self" and p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _required_parameters(cls: type) -> list[str]:
    parameters = inspect.signature(cls.__init__).parameters
    return [name for name, p in parameters.items()
            if name != "self" and p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _choices(module: nn.Module, name: str) -> str | None:
    """The choices of a string option, as the module's own check lists them when given a value it refuses."""
    try:
        configure(module, {name: _INVALID_CHOICE})
    except (ValueError, TypeError) as err:
        match = _CHOICES.search(str(err))
        return match.group(1) if match else None
    return None


@cache
def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of a dataclass and of its bases: ``{field: first paragraph}``."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for statement, following in zip(body, body[1:]):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[statement.target.id] = _one_line(following.value.value)
    return docs


@cache
def _argument_docs(cls: type) -> dict[str, str]:
    """``{argument: text}`` from the ``Args:`` sections of a module class's docstrings (``a, b: text`` documents both)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        section = text.partition("Args:")[2]
        for entry in re.split(r"\n(?=\s{0,8}[A-Za-z_][\w, ]*:\s)", section):
            head, sep, body = entry.strip().partition(":")
            if sep and re.fullmatch(r"[\w, ]+", head):
                for name in (n.strip() for n in head.split(",")):
                    docs[name] = _one_line(body)
    return docs


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("``", "")
