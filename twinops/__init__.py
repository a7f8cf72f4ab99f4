"""What every layer shares: the root of twinops' exception tree.

It sits below twin/ and imports nothing, so twin/, agents/, workflows/ and controller/
all raise into one tree, and importing it costs no start-up time (each layer's own
`__init__` pulls in pydantic or Temporal). `controller.errors` draws the whole tree.
"""

from twinops.errors import TwinopsError

__all__ = ["TwinopsError"]
