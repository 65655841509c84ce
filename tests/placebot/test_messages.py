"""Only our own errors reach users as they are; anything else becomes the generic sentence."""

from pipeline.errors import ModelLoadError, ParamError
from placebot.messages import GENERIC, UserFacingError, user_message


def test_a_library_value_error_is_not_shown_verbatim():
    """A ValueError from a library may carry internals: the user reads the generic line."""
    error = ValueError("Expected tensor of shape (1, 4, 64, 64) at /site-packages/x.py")
    assert user_message(error) == GENERIC


def test_a_bad_parameter_is_shown_as_written():
    """Our validation errors name the value and what is allowed: shown as they are."""
    assert user_message(ParamError("seed must be 0-9 but is 12")) == "seed must be 0-9 but is 12"


def test_a_user_facing_error_is_shown_as_written():
    """The bot's own refusals (an upload limit, say) are shown as they are."""
    assert user_message(UserFacingError("too big")) == "too big"


def test_a_model_load_failure_names_the_model_but_not_its_cause():
    """The cause (a path, a library's error, advice for the owner) stays in the log."""
    error = ModelLoadError("1.5", "/home/owner/models/sd", "OSError: /home/owner/models/sd: "
                           "no such folder; set PLACE_MODEL_1_5 to a diffusers folder")
    text = user_message(error)
    assert text.startswith("model 1.5 could not be loaded")
    assert "/home/owner" not in text and "OSError" not in text and "PLACE_" not in text
