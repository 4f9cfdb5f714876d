"""TrackerConfig: Ultralytics' names and defaults; every YAML problem is a one-line MaskrtError."""

from __future__ import annotations

import pytest

from maskrt.errors import MaskrtError
from maskrt.tracking import ByteTracker, TrackerConfig

# The keys and values of Ultralytics' cfg/trackers/bytetrack.yaml (8.4)
ULTRALYTICS_BYTETRACK = """\
tracker_type: bytetrack
track_high_thresh: 0.25
track_low_thresh: 0.1
new_track_thresh: 0.25
track_buffer: 30
match_thresh: 0.8
fuse_score: True
"""


def write(tmp_path, text: str):
    path = tmp_path / "tracker.yaml"
    path.write_text(text)
    return path


def error_of(path) -> str:
    with pytest.raises(MaskrtError) as info:
        TrackerConfig.from_yaml(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"tracker config {path}: ")
    return message


def test_defaults_are_ultralytics_bytetrack_yaml(tmp_path):
    config = TrackerConfig.from_yaml(write(tmp_path, ULTRALYTICS_BYTETRACK))
    assert config == TrackerConfig()
    assert (config.tracker_type, config.track_high_thresh, config.track_low_thresh, config.new_track_thresh,
            config.track_buffer, config.match_thresh, config.fuse_score, config.match) == (
        "bytetrack", 0.25, 0.1, 0.25, 30, 0.8, True, "box")


def test_yaml_overrides_some_keys_and_keeps_the_rest(tmp_path):
    config = TrackerConfig.from_yaml(write(tmp_path, "track_buffer: 60\nmatch: mask\nmatch_thresh: 1\n"))
    assert (config.track_buffer, config.match, config.match_thresh) == (60, "mask", 1.0)
    assert isinstance(config.match_thresh, float)
    assert config.track_high_thresh == 0.25


def test_gap_buffer_is_maskrts_own_key(tmp_path):
    assert TrackerConfig().gap_buffer == 0.3
    config = TrackerConfig.from_yaml(write(tmp_path, "gap_buffer: 1\n"))
    assert config.gap_buffer == 1.0 and isinstance(config.gap_buffer, float)


def test_unconfirmed_buffer_and_confirm_velocity_are_maskrts_own_keys(tmp_path):
    assert (TrackerConfig().unconfirmed_buffer, TrackerConfig().confirm_velocity) == (0.3, True)
    config = TrackerConfig.from_yaml(write(tmp_path, "unconfirmed_buffer: 0\nconfirm_velocity: false\n"))
    assert (config.unconfirmed_buffer, config.confirm_velocity) == (0.0, False)
    assert isinstance(config.unconfirmed_buffer, float)


def test_empty_file_means_defaults(tmp_path):
    assert TrackerConfig.from_yaml(write(tmp_path, "")) == TrackerConfig()


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "absent.yaml").endswith(": no such file")


def test_a_folder_is_not_readable(tmp_path):
    assert "cannot be read" in error_of(tmp_path)


def test_malformed_yaml_names_line_and_column(tmp_path):
    message = error_of(write(tmp_path, "track_buffer: 30\nmatch_thresh: [0.8\nfuse_score: true\n"))
    assert "not valid YAML (line 3, column" in message


def test_not_a_mapping(tmp_path):
    assert "must be a mapping of key: value, got list" in error_of(write(tmp_path, "- 1\n- 2\n"))


def test_unknown_key_is_named_with_the_known_ones(tmp_path):
    message = error_of(write(tmp_path, "track_buffer: 30\nproximity_thresh: 0.5\n"))
    assert "unknown key 'proximity_thresh'" in message
    assert "known keys: tracker_type, track_high_thresh" in message


@pytest.mark.parametrize("line, expected", [
    ("track_high_thresh: 1.5", "track_high_thresh must be a number in [0, 1], got 1.5"),
    ("match_thresh: -0.1", "match_thresh must be a number in [0, 1], got -0.1"),
    ("new_track_thresh: .nan", "new_track_thresh must be a number in [0, 1], got nan"),
    ("track_buffer: -1", "track_buffer must be an integer >= 0, got -1"),
    ("gap_buffer: -0.5", "gap_buffer must be a number in [0, 10], got -0.5"),
    ("gap_buffer: yes", "gap_buffer must be a number in [0, 10], got True"),
    ("unconfirmed_buffer: 11", "unconfirmed_buffer must be a number in [0, 10], got 11"),
    ("confirm_velocity: 1", "confirm_velocity must be true or false, got 1"),
    ("track_low_thresh: 0.5", "track_low_thresh (0.5) must not exceed track_high_thresh (0.25)"),
    ("tracker_type: botsort", "tracker_type must be 'bytetrack', got 'botsort'"),
    ("match: polygon", "match must be one of box, mask, got 'polygon'"),
])
def test_out_of_range(tmp_path, line, expected):
    assert error_of(write(tmp_path, line + "\n")).endswith(expected)


@pytest.mark.parametrize("line, expected", [
    ("track_high_thresh: '0.3'", "track_high_thresh must be a number in [0, 1], got '0.3'"),
    ("match_thresh: true", "match_thresh must be a number in [0, 1], got True"),
    ("track_buffer: 30.0", "track_buffer must be an integer >= 0, got 30.0"),
    ("track_buffer: yes", "track_buffer must be an integer >= 0, got True"),
    ("fuse_score: 1", "fuse_score must be true or false, got 1"),
    ("tracker_type: [bytetrack]", "tracker_type must be 'bytetrack', got ['bytetrack']"),
])
def test_wrong_type(tmp_path, line, expected):
    assert error_of(write(tmp_path, line + "\n")).endswith(expected)


def test_direct_construction_is_validated_too():
    with pytest.raises(MaskrtError, match=r"^tracker config: match_thresh must be a number in \[0, 1\], got 2$"):
        TrackerConfig(match_thresh=2)


def test_tracker_match_argument_overrides_the_config():
    assert ByteTracker(TrackerConfig(match="mask")).config.match == "mask"
    assert ByteTracker(TrackerConfig(match="mask"), match="box").config.match == "box"
    with pytest.raises(MaskrtError, match="match must be one of box, mask"):
        ByteTracker(match="segm")
