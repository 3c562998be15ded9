"""napari plugin for ScoreNet: slide reader, sample data and the scoring / mixing / training widgets.

The model package (``scorenet``) does all the work; this package is a thin Qt face over it. Its
widgets need the ``napari`` extra (``pip install "napari-scorenet[napari]"``). This module imports
nothing, so napari's manifest entry point, which names it, is harmless on an install without napari.
"""

__version__ = "0.1.0"
