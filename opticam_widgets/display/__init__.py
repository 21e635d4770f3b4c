"""Maps to pictures: colormaps, overlays and PNG encoding (numpy, matplotlib colormaps, PIL).

Used by the widget, the explorer, the dataset engine and the command line; imports no torch.
"""
