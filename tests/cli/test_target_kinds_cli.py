"""The CLI's --target forms beyond a class (issue #28): box, region, detected, --multilabel."""

from __future__ import annotations

import argparse

import pytest

from opticam_widgets.cli.args import target_arg
from opticam_widgets.cli.main import build_parser
from opticam_widgets.engine.targets import Box, Detected, MultiLabel, Region, TopK


def parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["explain", "sample:chelsea", *argv])


def test_the_forms_parse_to_tagged_values():
    assert target_arg("box:1,2,30,40:cat") == ("box", (1.0, 2.0, 30.0, 40.0), "cat")
    assert target_arg("region:5:0,0,8,8") == ("region", 5, (0.0, 0.0, 8.0, 8.0))
    assert target_arg("region:road") == ("region", "road", None)
    assert target_arg("detected") == ("detected", 0)
    assert parsed("--multilabel").multilabel and not parsed().multilabel


@pytest.mark.parametrize("text", ["box:1,2,3:4", "box:1,2,3,4", "region:", "detected:x",
                                  "region:3:1,2"])
def test_bad_forms_are_refused_naming_the_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        target_arg(text)


def test_the_command_builds_the_target_objects():
    from opticam_widgets.cli.main import _cli_target

    box = _cli_target([("box", (0.0, 0.0, 4.0, 4.0), 3)], parsed())
    assert isinstance(box, Box) and box.label == 3 and tuple(box.box) == (0.0, 0.0, 4.0, 4.0)
    assert isinstance(_cli_target([("region", 2, None)], parsed()), Region)
    assert _cli_target([("detected", 1)], parsed()).rank == 1
    assert isinstance(_cli_target([("detected", 0)], parsed()), Detected)
    assert _cli_target([281], parsed("--multilabel")) == MultiLabel([281])
    assert _cli_target([], parsed("--multilabel")) == MultiLabel()
    assert _cli_target([], parsed("--top", "2")) == TopK(2)
    with pytest.raises(ValueError, match="alone"):
        _cli_target([("detected", 0), 3], parsed())
