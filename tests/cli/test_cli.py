"""The ``opticam`` command, end to end in temporary folders (short runs: --iters 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opticam_widgets.cli.main import main
from opticam_widgets.model.zoo import SAMPLE_NAMES, sample_image

QUICK = ["--iters", "3", "--no-progress"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("opticam: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_samples_lists_every_name(capsys):
    code, out, err = run(capsys, "samples")
    assert code == 0 and err == ""
    assert [line.split()[0] for line in out.splitlines()] == [f"sample:{n}" for n in SAMPLE_NAMES]


def test_explain_default_model_offline(capsys, tmp_path, no_network):
    out_dir = tmp_path / "maps"
    code, out, err = run(capsys, "explain", "sample:chelsea", "--out", str(out_dir), *QUICK)
    assert code == 0, err
    assert no_network == []
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["chelsea_285_egyptian_cat.npy", "chelsea_285_egyptian_cat.png"]
    saliency = np.load(out_dir / "chelsea_285_egyptian_cat.npy")
    assert saliency.dtype == np.float32 and saliency.shape == (300, 451)
    assert 0.0 <= saliency.min() and 1.0 - 1e-6 <= saliency.max() <= 1.0  # float rounding
    with Image.open(out_dir / "chelsea_285_egyptian_cat.png") as png:
        assert png.size == (451, 300) and png.mode == "RGB"
        overlay = np.asarray(png)
    assert not np.array_equal(overlay, np.asarray(sample_image("chelsea")))  # heatmap blended
    # top classes with probabilities, then the map written
    assert "chelsea (451×300): top classes" in out
    assert "285   79.0%  Egyptian cat" in out
    assert "-> 285 Egyptian cat: logit" in out and "in 3 steps" in out


def test_explain_top_k_on_files_and_samples_with_progress(capsys, tmp_path):
    photo = tmp_path / "my photo.png"
    sample_image("coffee").resize((150, 100)).save(photo)
    code, out, err = run(capsys, "explain", str(photo), "sample:coffee", "--top", "2",
                         "--iters", "3", "--lr", "0.5", "--out", str(tmp_path / "o"))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert len(names) == 8  # 2 images × 2 classes × (png + npy)
    assert "my_photo_967_espresso.png" in names and "coffee_967_espresso.npy" in names
    assert np.load(tmp_path / "o" / "my_photo_967_espresso.npy").shape == (100, 150)
    assert out.count("top classes") == 2 and out.count("  -> ") == 4
    # tqdm's bar on stderr, over images × classes × iterations = 2 × 2 × 3
    assert "Opti-CAM" in err and "12/12" in err


def test_explain_targets_and_destructive(capsys, tmp_path):
    code, out, err = run(capsys, "explain", "sample:chelsea", "--target", "281", "--target",
                         "285", "--convention", "destructive", "--out", str(tmp_path), *QUICK)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "chelsea_281_tabby_destructive.png", "chelsea_285_egyptian_cat_destructive.png"]


def test_explain_same_stem_twice_keeps_both(capsys, tmp_path):
    code, _, err = run(capsys, "explain", "sample:camera", "sample:camera", "--out",
                       str(tmp_path), *QUICK)
    assert code == 0, err
    stems = {p.name.split("_")[0] for p in tmp_path.glob("*.npy")}
    assert stems == {"camera", "camera-2"}


def test_explain_torchvision_model_random_weights(capsys, tmp_path, no_network):
    code, out, err = run(capsys, "explain", "sample:rocket", "--model",
                         "torchvision:resnet18:none", "--out", str(tmp_path), *QUICK)
    assert code == 0, err
    assert len(list(tmp_path.glob("rocket_*.npy"))) == 1
    assert no_network == []


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["explain", "missing.png"], "`IMG`: no such file"),
        (["explain", "sample:lena"], "unknown sample image 'sample:lena'; choose one of chelsea"),
        (["explain", "sample:chelsea", "--target", "1000"], "--target 1000 is out of range"),
        (["explain", "sample:chelsea", "--target", "-1"], "class index >= 0"),
        (["explain", "sample:chelsea", "--target", "1", "--top", "2"], "not allowed with"),
        (["explain", "sample:chelsea", "--iters", "0"], "--iters: expected a positive integer"),
        (["explain", "sample:chelsea", "--lr", "-1"], "--lr: expected a positive number"),
        (["explain", "sample:chelsea", "--lr", "nan"], "--lr: expected a positive number"),
        (["explain", "sample:chelsea", "--convention", "both"], "invalid choice: 'both'"),
        (["explain", "sample:chelsea", "--alpha", "2"], r"expected a number in \[0, 1\]"),
        (["explain", "sample:chelsea", "--cmap", "nope"], "not a matplotlib colormap"),
        (["explain", "sample:chelsea", "--model", "vgg"], "unknown model 'vgg'"),
        (["explain", "sample:chelsea", "--model", "torchvision:resnet5O"], "did you mean"),
        (["explain"], "the following arguments are required: IMG"),
        (["explode"], "invalid choice: 'explode'"),
        ([], "give a command"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, pattern):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert re.search(pattern, one_error_line(err)), err


def test_bad_image_files_exit_2(capsys, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    for path, pattern in [(text, "cannot read"), (tiny, "too small"), (tmp_path, "not a file")]:
        code, _, err = run(capsys, "explain", str(path), "--out", str(tmp_path / "o"), *QUICK)
        assert code == 2
        assert pattern in one_error_line(err)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs were checked


def test_unwritable_output_exits_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "explain", "sample:coffee", "--out", str(blocker / "sub"), *QUICK)
    assert code == 2
    one_error_line(err)


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "explain" in out and "samples" in out
    code, out, _ = run(capsys, "explain", "--help")
    assert code == 0 and "--convention" in out and "sample:NAME" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("opticam ")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPTICAM_DEBUG", None)
    return env


def test_python_dash_m_and_console_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "opticam_widgets", "explain", "nope.jpg"],
                          cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "opticam: error: `IMG`: no such file 'nope.jpg'"

    script = Path(sys.executable).with_name("opticam")
    if not script.exists():
        pytest.skip("the `opticam` console script is not installed (pip install -e .)")
    proc = subprocess.run([str(script), "explain", "sample:coffee", "--iters", "3"],
                          cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "espresso" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "opticam_out").iterdir()) == [
        "coffee_967_espresso.npy", "coffee_967_espresso.png"]


def test_objective_reaches_both_commands(capsys, tmp_path, bundle):
    """``--objective`` is the engine's ``objective``: the same map as the API, kept by a store
    (a resume with another objective is refused), and an unknown name exits 2 naming the choices."""
    from opticam_widgets import OptiCAM

    code, _, err = run(capsys, "explain", "sample:coffee", "--objective", "mixed-fills",
                       "--out", str(tmp_path / "maps"), *QUICK)
    assert code == 0, err
    cli_map = np.load(next((tmp_path / "maps").glob("*.npy")))
    coffee = sample_image("coffee")
    api = OptiCAM(bundle, max_iter=3, objective="mixed-fills").explain(coffee)
    np.testing.assert_allclose(cli_map, api.saliency[0].numpy(), rtol=0, atol=1e-5)
    paper = OptiCAM(bundle, max_iter=3).explain(coffee)
    assert float(np.abs(cli_map - paper.saliency[0].numpy()).max()) > 0.01  # not the paper's

    folder = tmp_path / "photos"
    folder.mkdir()
    sample_image("coffee").save(folder / "coffee.png")
    store = ["explain-dataset", str(folder), "--out", str(tmp_path / "ds"), "--iters", "2",
             "--metrics", "none", "--yardsticks", "none", "--no-progress"]
    code, _, err = run(capsys, *store, "--objective", "mixed-fills-deletion")
    assert code == 0, err
    code, _, err = run(capsys, *store)  # the paper's objective on the same store
    assert code == 2 and "objective" in one_error_line(err)
    code, _, err = run(capsys, "explain", "sample:coffee", "--objective", "nope", *QUICK)
    assert code == 2 and "`objective` must be one of 'paper'" in one_error_line(err)
