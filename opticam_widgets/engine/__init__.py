"""The engine: Opti-CAM itself, headless.

:class:`~opticam_widgets.engine.explainer.OptiCAM` binds a model and holds its settings
(:mod:`.config`); :mod:`.optimize` runs the optimisation on the channel weights, with an
optimiser of the registry :mod:`.optimizers` (NNLS in :mod:`.nnls`); :mod:`.maps` and
:mod:`.masking` hold the arithmetic of a map and of the masked input (:mod:`.objectives`:
what the loop maximises, by name); :mod:`.targets` and
:mod:`.classes` read what to explain; :mod:`.result` is what comes back. Imports no UI.
"""
