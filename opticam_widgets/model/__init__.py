"""Reading the user's model: which layer, what shape, what it declares, how to run it fast.

Layer choice and one-shot capture (:mod:`.features`, :mod:`.picker`), feature layouts of CNNs and
transformers (:mod:`.layouts`, :mod:`.tokenorder`), refusals before a wrong map (:mod:`.preflight`,
:mod:`.modelspec`), BatchNorm folding for the inner loop (:mod:`.folding`), a model with its
preprocessing and labels (:mod:`.bundle`), the offline models (:mod:`.zoo`; torchvision detectors
and segmenters in :mod:`.tasks`) and a detector's class count (:mod:`.detectors`).
"""
