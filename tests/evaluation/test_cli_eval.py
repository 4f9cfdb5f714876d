"""`maskrt eval`: tables and summary printed, results + metrics JSON written; bad input is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from maskrt.cli import main
from maskrt.data import generate_coco_dataset
from maskrt.evaluation import STAT_NAMES, evaluate, load_coco
from tests.conftest import small_checkpoint  # noqa: F401  (session fixture)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three 128x128 shapes images (the small random model will score about 0 AP on them)."""
    return generate_coco_dataset(tmp_path_factory.mktemp("cli_eval") / "ds", 3, seed=11, size=(128, 128))


def eval_args(model: str, ann, images, out, *extra: str) -> list[str]:
    return ["eval", "--model", model, "--coco", str(ann), "--images", str(images), "--out", str(out),
            "--min-size", "128", "--max-size", "160", *extra]


def test_eval_prints_tables_and_writes_results(small_checkpoint, dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "res" / "results.json"
    code = main(eval_args(small_checkpoint, dataset / "annotations.json", dataset / "images", out))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "box (bbox) AP, 3 images" in captured.out and "mask (segm) AP, 3 images" in captured.out
    assert captured.out.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") == 2
    assert captured.out.count("Average Recall") == 12
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("maskrt: box AP ") and " | mask AP " in summary and " | mask AP50 " in summary
    assert "3 images" in summary
    assert "eval" in captured.err  # progress bar
    results = json.loads(out.read_text())
    metrics = json.loads((tmp_path / "res" / "results.metrics.json").read_text())
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.json", "results.metrics.json"]
    assert metrics["num_images"] == 3 and metrics["num_detections"] == len(results)
    assert metrics["score_threshold"] == 0.05
    for iou_type in ("bbox", "segm"):
        assert list(metrics[iou_type]) == list(STAT_NAMES)
        assert all(-1.0 <= v <= 1.0 for v in metrics[iou_type].values())
    for r in results:
        assert set(r) == {"image_id", "category_id", "score", "bbox", "segmentation"}
        assert r["score"] > 0.05 and r["segmentation"]["size"] == [128, 128]
    # the written results are a valid COCO results file and re-evaluate to the same numbers
    if results:
        again = evaluate(load_coco(dataset / "annotations.json"), results, verbose=False)
        assert again["segm"]["AP"] == pytest.approx(metrics["segm"]["AP"])


def test_max_images_and_quiet(small_checkpoint, dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "r.json"
    code = main(eval_args(small_checkpoint, dataset / "annotations.json", dataset / "images", out,
                          "--max-images", "1", "--quiet"))
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    assert "(1 images," in captured.out
    assert {r["image_id"] for r in json.loads(out.read_text())} <= {0}
    assert json.loads((tmp_path / "r.metrics.json").read_text())["num_images"] == 1


def _break(case: str, dataset, tmp_path, model: str):
    """Arguments (model, annotations, images) and output folder for one bad-input case."""
    ann, images = dataset / "annotations.json", dataset / "images"
    if case == "missing_annotations":
        ann = tmp_path / "nope.json"
    elif case == "not_json":
        ann = tmp_path / "garbage.json"
        ann.write_text("this is not json")
    elif case == "not_coco":
        ann = tmp_path / "list.json"
        ann.write_text(json.dumps([{"image_id": 1}]))
    elif case == "missing_images_dir":
        images = tmp_path / "no_images"
    elif case in ("missing_image", "wrong_size"):
        images = tmp_path / "imgs"
        images.mkdir()
        for p in (dataset / "images").iterdir():
            (images / p.name).write_bytes(p.read_bytes())
        if case == "missing_image":
            (images / "000001.png").unlink()
        else:
            Image.new("RGB", (20, 30)).save(images / "000000.png")
    elif case == "missing_model":
        model = str(tmp_path / "nope.safetensors")
    return model, ann, images


@pytest.mark.parametrize("case", ["missing_annotations", "not_json", "not_coco", "missing_images_dir",
                                  "missing_image", "wrong_size", "missing_model", "out_is_dir",
                                  "bad_max_images"])
def test_bad_input_is_one_line_exit_2_and_no_output(case, small_checkpoint, dataset, tmp_path,  # noqa: F811
                                                    capsys):
    model, ann, images = _break(case, dataset, tmp_path, small_checkpoint)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / ("taken" if case == "out_is_dir" else "results.json")
    if case == "out_is_dir":
        out.mkdir()
    extra = ["--max-images", "0"] if case == "bad_max_images" else []
    code = main(eval_args(model, ann, images, out, "--quiet", *extra))
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskrt: error: "), err
    leftovers = [p.name for p in out_dir.iterdir()]
    assert leftovers == (["taken"] if case == "out_is_dir" else []), leftovers


def test_eval_help_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "maskrt.cli", "eval", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for flag in ("--model", "--coco", "--images", "--out", "--score-threshold", "--min-size", "--max-size",
                 "--max-images"):
        assert flag in proc.stdout


def test_eval_puts_two_engines_side_by_side(small_checkpoint, dataset, tmp_path, capsys):  # noqa: F811
    """The same checkpoint twice: one cached fp32 engine, deterministic, so every difference is 0."""
    out = tmp_path / "results.json"
    args = eval_args(small_checkpoint, dataset / "annotations.json", dataset / "images", out, "--quiet",
                     "--model", small_checkpoint)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "maskrt: side by side on 3 images:" in printed and printed.count("(openvino fp32)") >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "results-2.json", "results-2.metrics.json", "results.compare.json", "results.json", "results.metrics.json"]
    compare = json.loads((tmp_path / "results.compare.json").read_text())
    assert len(compare["models"]) == 2 and len(compare["differences"]) == 1
    assert all(v == 0.0 for k, v in compare["differences"][0].items() if k not in ("model", "minus"))
    first, second = (json.loads((tmp_path / n).read_text())["segm"] for n in ("results.metrics.json",
                                                                             "results-2.metrics.json"))
    assert compare["models"][0]["mask AP"] == first["AP"] and compare["models"][1]["mask AP"] == second["AP"]


def test_model_and_precision_pairing():
    from maskrt.commands.eval import model_specs
    from maskrt.errors import MaskrtError

    assert model_specs(["a"], None) == [("a", None)]
    assert model_specs(["a"], ["fp32", "int8"]) == [("a", "fp32"), ("a", "int8")]
    assert model_specs(["a", "b"], ["int8"]) == [("a", "int8"), ("b", "int8")]
    assert model_specs(["a", "b"], ["fp32", "int8"]) == [("a", "fp32"), ("b", "int8")]
    with pytest.raises(MaskrtError, match="one precision per model"):
        model_specs(["a", "b"], ["fp32", "fp16", "int8"])
