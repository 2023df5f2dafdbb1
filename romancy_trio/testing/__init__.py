"""Testing workflows: a time-skipping environment (`environment`) and replay of recorded
histories (`replay`). A guest of the runtime: it uses only the public facade.

Importing it starts nothing."""

from ._environment import ClockError as ClockError
from ._environment import Environment as Environment
from ._environment import environment as environment
from ._replay import export_history as export_history
from ._replay import replay as replay

__all__ = ["ClockError", "Environment", "environment", "export_history", "replay"]
