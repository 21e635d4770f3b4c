"""The Save, Download and Code buttons: what they do and what they say.

Their messages go to their own line (``controls.save_status``), so the run
summary in the status line stays. A refused name (a folder, ``..``, an absolute path), saving
turned off (Voilà) or no map yet are said there, in plain words; nothing is written then.

Example:
    >>> from opticam_widgets.widget.controls import build_controls
    >>> from opticam_widgets.widget.export import Exporter
    >>> from opticam_widgets.widget.saving import SaveFolder
    >>> from opticam_widgets.widget.state import Session
    >>> c = build_controls()
    >>> ExportActions(c, Exporter(Session(), lambda: (0.5, "jet", "overlay"), lambda: None,
    ...                           folder=SaveFolder(enabled=False)))
    ... # doctest: +ELLIPSIS
    <...ExportActions object at ...>
    >>> c.save_button.layout.display
    'none'
"""

from __future__ import annotations

from pathlib import Path

from .controls import Controls
from .export import Exporter
from .messages import esc, note_html, toned

__all__ = ["ExportActions"]


class ExportActions:
    """Wires the export buttons of ``controls`` to ``exporter``.

    Args:
        controls: The widget's controls (Save, Download, Code, the file name, the message
            line and the code box).
        exporter: Makes the files.
    """

    def __init__(self, controls: Controls, exporter: Exporter) -> None:
        self.controls = controls
        self.exporter = exporter
        self._links = False  # the message line holds download links (stale after a new map)
        c = controls
        c.save_button.on_click(lambda _b: self.save())
        c.download_button.on_click(lambda _b: self.download())
        c.code_button.on_click(lambda _b: self.toggle_code())
        folder = exporter.folder
        if folder.enabled:
            c.save_button.tooltip = f"save the overlay as a new PNG file in {folder.folder}"
        else:  # Voilà: no server write (the app's author may enable it)
            c.save_path.layout.display = "none"
            c.save_button.layout.display = "none"

    def say(self, html: str, *, links: bool = False) -> None:
        """Put ``html`` (escaped already) on the message line."""
        self._links = links
        self.controls.save_status.value = html

    def save(self) -> Path | None:
        """The Save button: a new PNG in the save folder; the full path is said."""
        try:
            out = self.exporter.save_from_ui(self.controls.save_path.value)
        except (ValueError, TypeError, PermissionError, RuntimeError, OSError) as exc:
            self.say(toned("error", f"Not saved: {esc(exc)}"))
            return None
        self.say(f"Saved <code>{esc(out)}</code>")
        return out

    def download(self) -> None:
        """The Download button: links the browser downloads (PNG and JSON sidecar)."""
        try:
            links = self.exporter.download_html()
        except RuntimeError as exc:
            self.say(toned("error", esc(exc)))
            return
        self.say(f"Download: {links}", links=True)

    def toggle_code(self) -> None:
        """The Code button: show (or hide) the code that reproduces the map."""
        box = self.controls.code
        if box.layout.display != "none":
            box.layout.display = "none"
            return
        try:
            box.value = self.exporter.code()
        except RuntimeError as exc:
            self.say(toned("error", esc(exc)))
            return
        box.layout.display = ""
        self.say(note_html("Select the code (Ctrl+A in the box) and copy it (Ctrl+C)."))

    def map_changed(self, _change: object = None) -> None:
        """A new map is on screen: download links made for the old one go, the code follows."""
        if self._links:
            self.say("")
        if self.controls.code.layout.display != "none":
            try:
                self.controls.code.value = self.exporter.code()
            except RuntimeError:
                self.controls.code.value = ""
