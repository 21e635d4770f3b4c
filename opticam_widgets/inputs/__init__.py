"""Images in: coercion of every accepted image type to pixels, colour spaces, preprocessing specs.

:mod:`.images` (float pixels in [0, 1]) and :mod:`.photos` (8-bit photos kept as 8 bits),
:mod:`.colorspace` (ICC profiles to sRGB), :mod:`.preprocess` (the model's size and normalisation)
and :mod:`.hfprocessor` (a Hugging Face processor read as one), :mod:`.samples` (offline photos).
"""
