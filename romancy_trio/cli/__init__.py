"""The operator's command line, a guest built on the public facade: ``romancy-trio list``,
``show``, ``cancel``, ``resume``, ``send-event``, ``publish``, ``export`` and ``replay``.

``COMMANDS`` maps each name to ``(add_arguments, run)``; ``romancy_trio.__main__`` dispatches
through it. ``run(args)`` is a coroutine; a :class:`romancy_trio.RomancyError` it raises becomes
one ``error: ...`` line and a non-zero exit code there."""

from ._commands import COMMANDS as COMMANDS
from ._timeline import Step as Step
from ._timeline import timeline as timeline

__all__ = ["COMMANDS", "Step", "timeline"]
