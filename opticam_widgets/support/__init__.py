"""Plumbing shared by every floor: argument checks, default values, background jobs, lazy imports.

Nothing here knows Opti-CAM; :mod:`.defaults` imports nothing at all.
"""
