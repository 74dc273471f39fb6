"""Core errors name options by field; each front end spells them its own way."""

from __future__ import annotations

import dataclasses

import pytest

from pixgate.errors import UsageError
from pixgate.scoring.options import ScoreConfigError, ScoreOptions


def test_options_are_spelt_where_the_error_is_shown() -> None:
    error = UsageError.about("{output}: {path} exists; pass {overwrite}", path="/tmp/a{b}.arrow")
    assert error.fields == ("output", "overwrite")
    assert str(error) == "output: /tmp/a{b}.arrow exists; pass overwrite=True"
    assert error.render(lambda f: "--" + f) == "--output: /tmp/a{b}.arrow exists; pass --overwrite"


def test_plain_messages_are_never_read_as_templates() -> None:
    error = UsageError("a {path} from elsewhere, {unbalanced")
    assert str(error) == error.render(str.upper) == "a {path} from elsewhere, {unbalanced"
    assert error.fields == ()


def test_score_errors_spell_the_python_keywords() -> None:
    error = ScoreConfigError.about("{resume} and {overwrite} contradict; {precision}, {no_typography}, {backend_ray}")
    assert str(error) == "resume=True and overwrite=True contradict; precision, typography=False, backend='ray'"


def test_every_switch_the_api_takes_is_spelt_with_its_value() -> None:
    """A message tells a Python caller `overwrite=True`, not a bare `overwrite`."""
    from pixgate.capture.capture import CaptureOptions
    from pixgate.errors import API_SPELLING

    switches = {
        f.name
        for options in (ScoreOptions, CaptureOptions)
        for f in dataclasses.fields(options)
        if isinstance(f.default, bool)
    }
    assert switches <= set(API_SPELLING), switches - set(API_SPELLING)
    assert API_SPELLING["typography"] == "typography=True"


def test_a_misspelt_name_in_a_template_is_caught_at_once() -> None:
    with pytest.raises(ValueError, match="adress"):
        ScoreConfigError.about("{ray_address} {adress!r} needs {backend_ray}", address="x")


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ScoreOptions)])
def test_every_field_a_score_error_can_name_is_an_option(field: str) -> None:
    """What the Python API reads back from a message is a keyword it accepts."""
    spelt = ScoreConfigError.about("{" + field + "}").__str__()
    assert spelt.split("=")[0] in {f.name for f in dataclasses.fields(ScoreOptions)}
