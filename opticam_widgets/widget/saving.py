"""Server-side saving that never reaches outside its folder and never overwrites.

The widget's file-name box is typed by whoever sees the widget, which in a shared Voilà app is
not the notebook's owner. So a name from the UI is a *file name only*
(:func:`check_file_name`: no folder separator, no ``..``, no absolute path, no drive), and it
is written inside one folder the owner chose (:class:`SaveFolder`); in Voilà the server is not
written to at all unless the app's author enables it (:func:`in_voila`). Every write creates a
new file (:func:`write_new`: ``O_EXCL``, so neither an existing file nor a symbolic link placed
there is ever followed or replaced); a taken name becomes ``name (2).png``, ``name (3).png`` ….

Example:
    >>> check_file_name("my map")
    'my map.png'
    >>> try:
    ...     check_file_name("../etc/passwd")
    ... except ValueError as exc:
    ...     print(str(exc)[:40])
    `file name` must be a file name only (no
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SaveFolder", "check_file_name", "in_voila", "next_free", "with_suffix",
           "write_new"]

#: Environment variables Voilà sets in the kernels it starts.
VOILA_VARIABLES = ("VOILA_KERNEL_ID", "VOILA_BASE_URL", "VOILA_SERVER_URL", "VOILA_APP_PORT")

#: Characters no file name from the UI may contain (separators of every OS, a drive colon).
FORBIDDEN = ("/", "\\", ":", "\x00")

#: Names an OS reserves (Windows devices) or that mean a folder.
RESERVED = {".", "..", "con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
            *(f"lpt{i}" for i in range(1, 10))}


def in_voila() -> bool:
    """Whether this kernel was started by Voilà (a dashboard served to visitors).

    Example:
        >>> isinstance(in_voila(), bool)
        True
    """
    return any(os.environ.get(name) for name in VOILA_VARIABLES)


def with_suffix(name: str, suffix: str = ".png") -> str:
    """``name`` ending in ``suffix`` (added when missing; case-insensitive).

    Example:
        >>> with_suffix("cat"), with_suffix("cat.PNG"), with_suffix("cat.jpg")
        ('cat.png', 'cat.PNG', 'cat.jpg.png')
    """
    return name if name.lower().endswith(suffix) else name + suffix


def check_file_name(text: str, *, suffix: str = ".png") -> str:
    """A file name typed in the UI, checked, with ``suffix`` added when missing.

    Args:
        text: What the user typed (surrounding spaces are dropped).
        suffix: The extension the file must have.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: Empty, a folder part, ``..``, an absolute path, a drive, a control
            character, a reserved device name or over 200 characters: the message says why
            and what to type instead. Nothing is written.

    Example:
        >>> check_file_name("  tabby  ")
        'tabby.png'
    """
    if not isinstance(text, str):
        raise TypeError(f"`file name` must be a string, got {type(text).__name__}")
    name = text.strip()
    fix = "type a plain name such as `cat` or `cat.png`; it is saved in the widget's folder"
    if not name:
        raise ValueError(f"`file name` is empty: {fix}")
    bad = next((ch for ch in FORBIDDEN if ch in name), None)
    if bad is not None:
        raise ValueError(f"`file name` must be a file name only (no folder): {text!r} contains "
                         f"{bad!r}; {fix}")
    if any(ord(ch) < 32 for ch in name) or name.lower().split(".")[0] in RESERVED or (
            name in (".", "..")):
        raise ValueError(f"`file name` {text!r} is not a usable file name; {fix}")
    if name.startswith(".") or name.startswith("~"):
        raise ValueError(f"`file name` must not start with '.' or '~' (hidden or home "
                         f"files): {text!r}; {fix}")
    if len(name) > 200:
        raise ValueError(f"`file name` is {len(name)} characters long (200 at most); {fix}")
    return with_suffix(name, suffix)


def next_free(path: Path) -> Path:
    """``path`` when no file is there, else the first free ``stem (n).suffix``, n = 2, 3 ….

    Example:
        >>> next_free(Path("/nonexistent/a.png")).name
        'a.png'
    """
    if not os.path.lexists(path):
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
        n += 1


def write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` to a *new* file: ``path``, or the next free name when it is taken.

    The file is created with ``O_EXCL`` (an existing file or link is never opened), so even a
    file appearing between the check and the write is not overwritten.

    Returns:
        The path written.
    """
    candidate = next_free(path)
    for _ in range(1000):
        try:
            with open(candidate, "xb") as fh:
                fh.write(data)
            return candidate
        except FileExistsError:  # taken since the check: look again from the start
            candidate = next_free(path)
    raise FileExistsError(f"could not find a free file name near {path}")


class SaveFolder:
    """The one folder the UI's Save button writes into, and whether it may write at all.

    Args:
        folder: The folder (created when missing); ``None``: the kernel's working directory
            (in Jupyter, the notebook's own folder) at the time the widget is made.
        enabled: Whether the server may be written to; ``None``: yes, except in Voilà.

    Example:
        >>> import tempfile
        >>> folder = SaveFolder(tempfile.mkdtemp(), enabled=True)
        >>> folder.write("map", b"x").name, folder.write("map.png", b"y").name
        ('map.png', 'map (2).png')
    """

    def __init__(self, folder: str | os.PathLike | None = None,
                 enabled: bool | None = None) -> None:
        if folder is not None and not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"`save_dir` must be a folder path (str or Path), got "
                            f"{type(folder).__name__}")
        self.folder = Path(os.getcwd() if folder is None else folder).expanduser().resolve()
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"`save_dir` must be a folder, but {self.folder} is a file; give "
                             "a folder path")
        #: Whether the Save button writes on the server.
        self.enabled = (not in_voila()) if enabled is None else enabled

    @classmethod
    def from_option(cls, save_dir: str | os.PathLike | bool | None) -> SaveFolder:
        """The widget's ``save_dir`` option as a save folder.

        ``None``: the working directory, off in Voilà; a folder: on everywhere (its owner
        chose it); ``False``: off.

        Example:
            >>> SaveFolder.from_option(False).enabled
            False
        """
        if save_dir is False:
            return cls(None, enabled=False)
        if save_dir is True:
            raise TypeError("`save_dir` must be a folder path, None (the working directory) "
                            "or False (no server write), got True")
        return cls(save_dir, enabled=None if save_dir is None else True)

    def write(self, name: str, data: bytes) -> Path:
        """Write ``data`` under the checked file ``name`` in the folder, as a new file.

        Raises:
            PermissionError: Server saving is off (Voilà without ``server_save=True``).
            ValueError: ``name`` is not a plain file name (see :func:`check_file_name`).
        """
        if not self.enabled:
            raise PermissionError("saving on the server is off here: use Download (the "
                                  "notebook's author can name a folder with save_dir=...)")
        target = self.folder / check_file_name(name)
        if target.parent != self.folder:  # check_file_name makes this impossible; belt and braces
            raise ValueError(f"`file name` {name!r} leaves the folder {self.folder}")
        self.folder.mkdir(parents=True, exist_ok=True)
        return write_new(target, data)
