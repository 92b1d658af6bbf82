"""Pure domain rules: keys, prompt references, metadata specs, lifecycle."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import SpecError
from clipedit.domain.job import JobStatus, can_transition, sources_of
from clipedit.domain.keys import is_video_key, job_id_for, output_key_for
from clipedit.domain.prompt import check_references, to_kling_syntax
from clipedit.domain.spec import Mode, Model, SpecDefaults, spec_from_metadata


@pytest.mark.parametrize("key", ["a.mp4", "A.MP4", "x/y.Mov", "clip.MOV"])
def test_video_keys_in_any_case(key):
    assert is_video_key(key)


@pytest.mark.parametrize("key", ["a.mp4.txt", "a.mkv", "mp4", "folder/"])
def test_non_video_keys(key):
    assert not is_video_key(key)


def test_job_id_is_deterministic_per_object_version():
    assert job_id_for("b", "k", "v1") == job_id_for("b", "k", "v1")
    assert job_id_for("b", "k", "v1") != job_id_for("b", "k", "v2")
    assert job_id_for("b", "k", "v1") != job_id_for("b", "k2", "v1")
    assert len(job_id_for("b", "k", "v1")) <= 64  # fits Step Functions execution names (80)


def test_output_key_follows_the_input_key():
    assert output_key_for("incoming/shoot/My Clip é.MOV", incoming_prefix="incoming/", output_prefix="edited/") == (
        "edited/shoot/My Clip é.mp4"
    )
    assert output_key_for("other/x.mp4", incoming_prefix="incoming/", output_prefix="out/") == "out/other/x.mp4"


def test_prompt_references_are_rewritten_to_kling_syntax():
    prompt = "Put the jacket from @Image2 on the man in @Video1, keep @image1 as style; @Element1 waves"
    assert to_kling_syntax(prompt) == (
        "Put the jacket from <<<image_2>>> on the man in <<<video_1>>>, keep <<<image_1>>> as style; "
        "<<<element_1>>> waves"
    )
    assert to_kling_syntax("email me at x@Imagery.com") == "email me at x@Imagery.com"


@pytest.mark.parametrize(
    ("prompt", "images", "elements"),
    [("@Image3 please", 2, 0), ("@Element2", 0, 1), ("@Video2", 0, 0), ("@Image0", 4, 0)],
)
def test_references_to_missing_inputs_are_refused(prompt, images, elements):
    with pytest.raises(SpecError) as info:
        check_references(prompt, image_count=images, element_count=elements)
    assert info.value.code == "UNKNOWN_REFERENCE"


def test_spec_from_metadata_defaults_and_overrides():
    spec = spec_from_metadata({"Prompt": "  Make it snow  "}, SpecDefaults(mode=Mode.STD, model=Model.O1))
    assert (spec.prompt, spec.mode, spec.model, spec.keep_audio) == ("Make it snow", Mode.STD, Model.O1, True)
    spec = spec_from_metadata({"prompt": "p", "mode": "PRO", "keep-audio": "false", "model": "o3"}, SpecDefaults())
    assert (spec.mode, spec.keep_audio, spec.model) == (Mode.PRO, False, Model.O3)


def test_rfc2047_encoded_prompt_is_decoded():
    encoded = "=?UTF-8?B?" + __import__("base64").b64encode("Fond: plage au coucher du soleil ☀".encode()).decode() + "?="
    assert spec_from_metadata({"prompt": encoded}, SpecDefaults()).prompt == "Fond: plage au coucher du soleil ☀"


def test_lifecycle_only_moves_forward():
    assert can_transition(JobStatus.SUBMITTED, JobStatus.SUCCEEDED)
    assert not can_transition(JobStatus.SUCCEEDED, JobStatus.FAILED)
    assert not can_transition(JobStatus.PROCESSING, JobStatus.SUBMITTED)
    assert sources_of(JobStatus.SUCCEEDED) == {JobStatus.SUBMITTED, JobStatus.PROCESSING}
    for terminal in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.REJECTED):
        assert terminal.terminal and not any(can_transition(terminal, t) for t in JobStatus)
