"""Judging a map: faithfulness metrics, insertion/deletion curves and the baselines to compare with.

:mod:`.metrics` (Average Drop / Increase / Gain), :mod:`.curves` (insertion, deletion),
:mod:`.forward` (the model's probabilities on masked images, shared by both) and
:mod:`.baselines` (channel mean, Grad-CAM, Grad-CAM++, Score-CAM on the same layer).
"""
