"""``python -m exportloss`` and the ``exportloss`` command: the command line of :mod:`exportloss.cli`, or,
where the ``export`` extra is not installed, one line saying so (exit status 2)."""

from __future__ import annotations

import sys

from ._extras import missing_export_extra


def main() -> int:
    try:
        from .cli import main as run
    except ModuleNotFoundError as err:
        message = missing_export_extra(err)
        if message is None:
            raise
        print(f"exportloss: error: {message}", file=sys.stderr)
        return 2
    return run()


if __name__ == "__main__":
    raise SystemExit(main())
