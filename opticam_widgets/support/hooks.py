"""The library's own module hooks: they act in the thread that set them, and are not the user's.

The widget runs yardsticks and baselines in a background thread on the user's model while the
user may call ``explain`` in a cell. A hook the library puts on a module for one job (the
capture of a layer, the check that interrupts a cancelled job) must not act on the other
thread's forward passes (a capture would keep the wrong activations, an interruption would
cancel the user's call), and must not make the other job take it for a hook of the user's
(which runs the model unfolded: :mod:`~opticam_widgets.model.folding`). :func:`own_hook`
wraps such a hook; :func:`user_hooked` tells whether any other hook is set.

Example:
    >>> import threading
    >>> from torch import nn
    >>> net, seen = nn.Identity(), []
    >>> handle = net.register_forward_hook(own_hook(lambda m, i, o: seen.append(1)))
    >>> _ = net(1); t = threading.Thread(target=net, args=(2,)); t.start(); t.join()
    >>> seen, user_hooked(net)
    ([1], False)
    >>> handle.remove()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["drop_own_hooks", "own_hook", "user_hooked"]

#: The attribute that marks a hook as the library's own.
_MARK = "opticam_own_hook"


def own_hook(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a module hook that acts only in the calling thread, marked as the library's.

    Example:
        >>> own_hook(lambda *a: 1)(None, None)
        1
    """
    owner = threading.get_ident()

    def hook(*args: Any) -> Any:
        if threading.get_ident() != owner:
            return None
        return fn(*args)

    setattr(hook, _MARK, True)
    return hook


def _hook_dicts(m: nn.Module) -> list[dict]:
    return [m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
            getattr(m, "_backward_pre_hooks", {})]


def drop_own_hooks(model: nn.Module) -> nn.Module:
    """Remove the library's own hooks from ``model`` (a copy of the user's model, say).

    A copy taken while another thread's job hooks the original carries that hook: it is
    dropped here so that it cannot act on the copy later.

    Example:
        >>> net = nn.Identity()
        >>> _ = net.register_forward_hook(own_hook(lambda m, i, o: None))
        >>> len(drop_own_hooks(net)._forward_hooks)
        0
    """
    for m in model.modules():
        for hooks in _hook_dicts(m):
            for key in [k for k, h in hooks.items() if getattr(h, _MARK, False)]:
                del hooks[key]
    return model


def user_hooked(model: nn.Module) -> bool:
    """Whether any module of ``model`` holds a hook that is not the library's own.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> h = net.register_forward_pre_hook(lambda m, i: None)
        >>> user_hooked(net)
        True
        >>> h.remove()
    """
    for m in model.modules():
        if any(not getattr(h, _MARK, False) for d in _hook_dicts(m) for h in d.values()):
            return True
    return False
