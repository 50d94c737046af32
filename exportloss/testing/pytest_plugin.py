"""The pytest plugin of the ``export`` extra (entry point ``pytest11``, name ``exportloss``): ``exportloss_check``.

    def test_my_loss_exports(exportloss_check):
        exportloss_check(MyLoss(), (pred, target, weight))

``exportloss_check(module, example_inputs, **options)`` is :func:`exportloss.testing.assert_exports`
with the session's exporter and backend: a test that asks for the fixture runs once per
``--exportloss-exporter NAME`` and ``--exportloss-backend NAME`` (both repeatable; default: the dynamo
exporter on ``ort-cpu``), with ids like ``[dynamo-ort-cpu]``. Every other option of ``assert_exports``
(``reference``, ``cases``, ``rtol``, ``atol``, ``adversaries``, ...) passes through. A failure is the
``AssertionError`` table; a backend that cannot run here makes the test a skip with the reason, once every
other check has passed. ``-p no:exportloss`` turns the plugin off.

Importing this module loads nothing of the toolchain: a pytest session pays for it only in tests that
use the fixture.
"""

from __future__ import annotations

import pytest

DEFAULT_EXPORTER = "dynamo"
DEFAULT_BACKEND = "ort-cpu"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("exportloss", "export verification with exportloss (the exportloss_check fixture)")
    group.addoption("--exportloss-backend", action="append", default=[], metavar="NAME",
                    help="run exportloss_check on this backend: ort-cpu, ort-cuda, ort-trt or trt (repeatable; "
                         f"default: {DEFAULT_BACKEND})")
    group.addoption("--exportloss-exporter", action="append", default=[], metavar="NAME",
                    help=f"export with dynamo or torchscript (repeatable; default: {DEFAULT_EXPORTER})")


def _session_options(config: pytest.Config) -> tuple[list[str], list[str]]:
    exporters = list(dict.fromkeys(config.getoption("exportloss_exporter"))) or [DEFAULT_EXPORTER]
    backends = list(dict.fromkeys(config.getoption("exportloss_backend"))) or [DEFAULT_BACKEND]
    return exporters, backends


def pytest_configure(config: pytest.Config) -> None:
    if not (config.getoption("exportloss_exporter") or config.getoption("exportloss_backend")):
        return  # nothing to check, nothing to import
    from exportloss.backends import BACKEND_NAMES
    from exportloss.export import EXPORTERS

    exporters, backends = _session_options(config)
    for option, names, known in (("--exportloss-exporter", exporters, EXPORTERS), ("--exportloss-backend", backends, BACKEND_NAMES)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise pytest.UsageError(f"{option} must be one of {', '.join(known)}; got {', '.join(unknown)}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "exportloss_check" in metafunc.fixturenames:
        exporters, backends = _session_options(metafunc.config)
        combinations = [(exporter, backend) for exporter in exporters for backend in backends]
        metafunc.parametrize("exportloss_check", combinations, indirect=True, ids=[f"{e}-{b}" for e, b in combinations])


@pytest.fixture
def exportloss_check(request: pytest.FixtureRequest):
    """``check(module, example_inputs, **options)``: :func:`exportloss.testing.assert_exports` with this
    test's exporter and backend; returns the report, skips when the backend cannot run here."""
    exporter, backend = getattr(request, "param", (DEFAULT_EXPORTER, DEFAULT_BACKEND))
    try:
        from exportloss.testing import assert_exports
    except ModuleNotFoundError as err:
        from exportloss._extras import missing_export_extra

        message = missing_export_extra(err)
        if message is None:
            raise
        pytest.fail(f"exportloss_check: {message}", pytrace=False)

    def check(module, example_inputs, **options):
        __tracebackhide__ = True
        for option in ("exporters", "backends"):
            if option in options:
                raise TypeError(f"exportloss_check takes {option} from the command line "
                                f"(--exportloss-{option[:-1]} NAME), not as an argument")
        report = assert_exports(module, example_inputs, exporters=(exporter,), backends=(backend,), **options)
        if report.skipped:
            pytest.skip("; ".join(dict.fromkeys(f"{row.backend} unavailable: {row.unavailable}" for row in report.skipped)))
        return report

    return check
