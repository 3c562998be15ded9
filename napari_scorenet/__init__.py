"""napari plugin for ScoreNet: slide reader, sample data and the scoring / mixing / training widgets.

The model package (``scorenet``) does all the work; this package is a thin Qt face over it.
"""

__version__ = "0.1.0"
