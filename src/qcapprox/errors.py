"""The one exception module: every error names the file, atom or configuration at fault."""


class QcapproxError(Exception):
    """Base class of all qcapprox errors."""


class ParentError(QcapproxError):
    """A parent structure is malformed or its orbits are not what the user declared."""


class IdentifyError(QcapproxError):
    """An Atoms object is not a decoration of the parent."""


class EnumerationError(QcapproxError):
    """A composition or recipe cannot be enumerated as asked."""


class RecipeError(QcapproxError):
    """A recipe file is malformed."""


class StoreError(QcapproxError):
    """An HDF5 store is corrupt, foreign, of another schema version or of another run."""


class HullError(QcapproxError):
    """References or atom counts do not define a formation energy or a convex hull."""


class LabelingError(QcapproxError):
    """A labeling run cannot start (unknown calculator, store already labelled, ...)."""


class ModelError(QcapproxError):
    """A model family cannot be trained, found or loaded."""


class AllegroError(ModelError):
    """An Allegro member cannot be trained, found or loaded."""
