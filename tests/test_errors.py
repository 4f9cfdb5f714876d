"""maskrt.errors.first_line: the detail a one-line error quotes from another library's exception."""

from __future__ import annotations

import json

import pytest
import yaml

from maskrt.errors import first_line


@pytest.mark.parametrize("exc, want", [
    (ValueError("bad header\n  at byte 12\n"), "bad header"),
    (RuntimeError("\n\n  PytorchStreamReader failed  \nmore"), "PytorchStreamReader failed"),
    (KeyError(), "KeyError"),
    (OSError("   \n \n"), "OSError"),
])
def test_first_non_blank_line_or_the_type_name(exc, want):
    assert first_line(exc) == want


def test_library_errors_give_their_reason():
    with pytest.raises(json.JSONDecodeError) as json_error:
        json.loads('{"images": [1, 2,, 3]}')
    assert first_line(json_error.value) == "Expecting value: line 1 column 18 (char 17)"
    with pytest.raises(yaml.YAMLError) as yaml_error:
        yaml.safe_load("MODEL: [1, 2\nSOLVER: 3")
    assert first_line(yaml_error.value) == str(yaml_error.value).splitlines()[0] != ""
