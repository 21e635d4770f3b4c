"""Judging a map: faithfulness yardsticks, sanity checks and the baselines to compare with.

:mod:`.metrics` (Average Drop / Increase / Gain), :mod:`.curves` (insertion, deletion),
:mod:`.fills` (what removed pixels become: black, the dataset's mean colour, a blur),
:mod:`.road` (ROAD, by pytorch-grad-cam), :mod:`.yardsticks` (all of them in one call),
:mod:`.forward` (the model's probabilities on masked images, shared by all),
:mod:`.randomisation` and :mod:`.sensitivity` (the sanity checks: does the map depend on the
model's weights, on the class?), with :mod:`.map_similarity` and :mod:`.method_maps`, and
:mod:`.baselines` (channel mean, Grad-CAM, Grad-CAM++, Score-CAM on the same layer, and
pytorch-grad-cam's rivals from :mod:`.rivals`).
"""
