"""The operator's command line, a guest built on the public facade: ``romancy-trio list``,
``show``, ``cancel``, ``resume``, ``send-event``, ``publish``, ``export`` and ``replay``.

``COMMANDS`` maps each name to ``(add_arguments, run)``; ``romancy_trio.__main__`` dispatches
through it. ``run(args)`` is a coroutine; a :class:`romancy_trio.RomancyError` it raises becomes
one ``error: ...`` line and a non-zero exit code there. ``details``/``summary`` (what ``show``
and ``list`` tell about an instance) and ``export`` are shared with the web viewer."""

from ._commands import COMMANDS as COMMANDS
from ._commands import details as details
from ._commands import export as export
from ._commands import summary as summary
from ._timeline import Step as Step
from ._timeline import timeline as timeline

__all__ = ["COMMANDS", "Step", "details", "export", "summary", "timeline"]
