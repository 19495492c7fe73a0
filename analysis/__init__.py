"""Design principles from the trial database: load studies (`load`), estimate effects with intervals (`effects`,
`stats`), grade claims (`principles`), fit scaling (`scaling`), pick a recipe (`recipe`) and render the report
(`report`). Reads only the trial database and run artifacts; loads neither torch nor Lightning."""
from lclab.lazy import lazy_exports

_WHERE = {"Lab": "load", "build": "report"}  # `load` and `analyze` are also module names: import them from there
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
