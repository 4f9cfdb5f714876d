"""Input expansion, fixed output names, completion-record checks and the worker's attempt limit:
no engine and no Ray needed. Expected values are written out by hand from the file trees made here."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from maskrt.options import LoadOptions
from maskrt.distributed.inputs import expand_sources, output_name
from maskrt.distributed.records import finished_record, write_record
from maskrt.distributed.settings import JobSettings, Unit, image_chunks
from maskrt.distributed.state import mark_attempt, state_dir
from maskrt.distributed.work import Worker
from maskrt.errors import InputError

pytestmark = pytest.mark.timeout(60)


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path):
    """videos/a/clip.mp4, videos/b/clip.mp4, videos/c.mkv, imgs/{1,2}.png + notes.txt (not an image)."""
    for rel in ("videos/a/clip.mp4", "videos/b/clip.mp4", "videos/c.mkv", "imgs/2.png", "imgs/1.png"):
        touch(tmp_path / rel)
    (tmp_path / "imgs" / "notes.md").write_text("not an image")
    return tmp_path


def test_names_are_fixed_and_collision_free(tree):
    a, b = str(tree / "videos/a/clip.mp4"), str(tree / "videos/b/clip.mp4")
    digest = hashlib.sha256(a.encode()).hexdigest()[:12]
    assert output_name("video", a) == f"clip-{digest}"
    assert output_name("video", a) != output_name("video", b)
    assert output_name("images", str(tree / "imgs")) .startswith("imgs-")
    assert output_name("images", str(tree / "x" / "*.png")).startswith("x-")  # a glob: its folder's name
    assert output_name("video", str(tree / "we ird$name.mp4")).startswith("we_ird_name-")
    one = expand_sources([a], tree / "out").inputs[0].name
    many = expand_sources([b, str(tree / "videos/c.mkv"), a], tree / "out").inputs[-1].name
    assert one == many  # the name does not depend on the other inputs


def test_folders_globs_lists_and_duplicates(tree, monkeypatch):
    monkeypatch.chdir(tree)
    listing = touch(tree / "lists" / "todo.txt", b"# videos\n../videos/c.mkv\n\n../imgs\n../nowhere.mp4\n")
    found = expand_sources(["videos/*/clip.mp4", str(listing), "videos/c.mkv", "imgs/*.png"], tree / "out")
    specs = [(i.kind, i.spec) for i in found.inputs]
    assert specs == [("video", "videos/a/clip.mp4"), ("video", "videos/b/clip.mp4"),
                     ("video", str(tree / "lists" / "../videos/c.mkv")), ("images", str(tree / "lists" / "../imgs")),
                     ("images", "imgs/*.png")]  # videos/c.mkv again (same absolute path): dropped
    folder = found.inputs[3]
    assert [name for name, _ in folder.images] == [str(tree / "lists/../imgs/1.png"), str(tree / "lists/../imgs/2.png")]
    assert [path for _, path in folder.images] == [str(tree / "imgs/1.png"), str(tree / "imgs/2.png")]
    assert [name for name, _ in found.inputs[4].images] == ["imgs/1.png", "imgs/2.png"]  # as `maskrt run` names them
    assert found.missing == [(str(tree / "lists" / "../nowhere.mp4"), f"input not found: {tree}/lists/../nowhere.mp4")]


def test_missing_empty_and_out_dir_inputs(tree):
    out = tree / "out"
    touch(out / "old-123.mp4")
    found = expand_sources([str(tree / "none.mp4"), str(tree / "*.avi"), str(tree / "videos"), str(out / "old-123.mp4"),
                            str(tree / "**" / "*.mp4")], out)
    reasons = [reason for _, reason in found.missing]
    assert reasons[0] == f"input not found: {tree}/none.mp4"
    assert reasons[1] == f"no files match {tree}/*.avi"
    assert reasons[2] == f"no images in folder {tree}/videos"
    assert reasons[3].endswith(f"is inside --out-dir {out}")  # named explicitly: refused
    # the recursive glob finds the two clips but not the earlier output under out/
    assert sorted(os.path.relpath(i.path, tree) for i in found.inputs) == ["videos/a/clip.mp4", "videos/b/clip.mp4"]


def test_chunks_follow_the_batch_size(tree):
    item = expand_sources([str(tree / "imgs")], tree / "out").inputs[0]
    item = type(item)(item.kind, item.spec, item.path, item.name, item.images * 5)  # 10 images
    assert [(u.start, len(u.images)) for u in image_chunks(item, 3, 1)] == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert [(u.start, len(u.images)) for u in image_chunks(item, 3, 2)] == [(0, 4), (4, 4), (8, 2)]  # 3 -> 4
    assert [u.key for u in image_chunks(item, 4, 4)] == [f"{item.name}.part00000", f"{item.name}.part00001",
                                                           f"{item.name}.part00002"]


def settings(out, **kw) -> JobSettings:
    load = LoadOptions(score_threshold=kw.pop("score_threshold", 0.5))
    return JobSettings(out_dir=str(out), job="job1", engine="/nowhere", engine_sha256="e" * 64, load=load, **kw)


def test_finished_record_needs_same_input_settings_and_outputs(tree):
    out = tree / "out"
    out.mkdir()
    item = expand_sources([str(tree / "videos/c.mkv")], out).inputs[0]
    s = settings(out)
    st = os.stat(item.path)
    (out / f"{item.name}.jsonl").write_text("{}\n")
    facts = {"kind": "video", "path": item.path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    write_record(out, item.name, {"input": facts, "settings": s.output_settings(), "outputs":
                                  {f"{item.name}.jsonl": {"size": 3}}, "frames": 1, "problems": [], "job": "job0"},
                 tree)
    assert finished_record(out, item, s.output_settings())["frames"] == 1
    assert finished_record(out, item, settings(out, score_threshold=0.9).output_settings()) is None
    (out / f"{item.name}.jsonl").write_text("{}\n{}\n")  # an output that is not the one recorded
    assert finished_record(out, item, s.output_settings()) is None
    (out / f"{item.name}.jsonl").write_text("{}\n")
    later = time.time_ns() + 10**9
    os.utime(item.path, ns=(later, later))  # the input changed since
    assert finished_record(out, item, s.output_settings()) is None
    (out / f"{item.name}.done.json").write_text(json.dumps({"version": 1})[:-2])  # torn record
    assert finished_record(out, item, s.output_settings()) is None


def test_a_unit_whose_worker_always_died_is_reported_failed(tree):
    """Attempts are counted on disk: after max_attempts earlier attempts died (their markers are
    there, no record), the next attempt reports the failure instead of trying again."""
    out = tree / "out"
    item = expand_sources([str(tree / "videos/c.mkv")], out).inputs[0]
    s = settings(out, max_attempts=2)
    for _ in range(2):
        mark_attempt(out, s.job, item.name)
    result = Worker(s).process(Unit("video", item))
    assert (result["status"], result["attempts"]) == ("failed", 3)
    assert result["reason"] == "the worker died during each of 2 attempts"
    assert (state_dir(out) / "attempts" / "job1" / item.name).read_text() == "3"


def test_name_collisions_are_refused(tree, monkeypatch):
    import maskrt.distributed.inputs as inputs

    monkeypatch.setattr(inputs, "output_name", lambda kind, path: "same-000000000000")
    with pytest.raises(InputError, match="map to one output name same-000000000000"):
        expand_sources([str(tree / "videos/c.mkv"), str(tree / "videos/a/clip.mp4")], tree / "out")


def test_a_bare_ray_before_the_sources(tree):
    from maskrt.commands.batch import bare_ray
    from maskrt.cli import build_parser

    clip = str(tree / "videos/c.mkv")
    args = build_parser().parse_args(["batch", "--ray", clip, str(tree / "imgs"), "--model", "m", "--out-dir", "o"])
    assert (args.ray, args.sources) == (clip, [str(tree / "imgs")])  # what argparse makes of it
    assert bare_ray(args.ray, args.sources) == ("", [clip, str(tree / "imgs")])
    assert bare_ray("10.0.0.1:6379", ["x"]) == ("10.0.0.1:6379", ["x"])
    assert bare_ray("auto", ["x"]) == ("auto", ["x"]) and bare_ray(None, ["x"]) == (None, ["x"])
