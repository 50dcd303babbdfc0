"""The camera's decode path against zxing-cpp's plain call, on real photographs and generated frames.

Every comparison is computed in the test on the same images: the plain decoder's reads are the floor,
never a hard-coded count.
"""

from __future__ import annotations

import numpy as np
import pytest

from device.vision.decoder import Decoder, Region, sharpen, upscale
from tests.support.frames import (
    LabeledFrame,
    camera_frames,
    empty_frames,
    photo_cases,
    photo_gray,
    plain_texts,
)
from tests.support.paths import PHOTOS

BUDGET_MS = 40.0


def standing_clock() -> float:
    """The decoder's clock in these tests: the budget is never spent however slow the CPU (emulated Arm
    takes many times 40 ms for one step), so what it reads is a property of the frames, not the machine."""
    return 0.0


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(budget_ms=BUDGET_MS, clock=standing_clock)


@pytest.fixture(scope="module")
def frames() -> list[LabeledFrame]:
    # Two of each condition (a frame costs over a second under emulation); seed 7 holds perspective
    # codes only escalation reads.
    return list(camera_frames(16, seed=7))


def _stripped(texts: list[str]) -> list[str]:
    return [t.rstrip("\r\n") for t in texts]


@pytest.mark.parametrize("photo_set", ["zxing-cpp", "zxing-java"])
def test_photos_read_everything_the_plain_decoder_reads_and_never_misread(
    decoder: Decoder, photo_set: str
) -> None:
    cases = photo_cases(PHOTOS, photo_set)
    assert len(cases) > 100, f"the {photo_set} photo set is missing or incomplete"
    plain_read, ours_read, misread = set(), set(), []
    for case in cases:
        gray = photo_gray(case)
        if case.text in _stripped(plain_texts(gray)):
            plain_read.add(case.name)
        ours = _stripped(decoder.decode(gray).texts)
        if case.text in ours:
            ours_read.add(case.name)
        elif ours and not case.expected_is_wrong:
            misread.append(case.name)
    assert misread == []
    assert plain_read - ours_read == set(), "the plain decoder read photos ours missed"
    assert len(ours_read) >= len(plain_read)


def test_generated_frames_read_more_than_the_plain_decoder(
    decoder: Decoder, frames: list[LabeledFrame]
) -> None:
    plain_read = {f.seed for f in frames if f.text in plain_texts(f.image)}
    ours_read, misread = set(), []
    for f in frames:
        texts = decoder.decode(f.image).texts
        if f.text in texts:
            ours_read.add(f.seed)
        elif texts:
            misread.append((f.condition, f.seed))
    assert misread == []
    assert plain_read <= ours_read
    assert len(ours_read) > len(plain_read), "escalation read nothing the cheap pass missed"


def test_empty_frames_find_nothing_and_do_not_escalate(decoder: Decoder) -> None:
    for f in empty_frames(8):
        decoded = decoder.decode(f.image)
        assert decoded.found == ()
        # No evidence of a code, so no step ran: an empty frame costs exactly the cheap pass.
        assert decoded.undecoded == ()
        assert decoded.step is None


def test_a_hint_from_earlier_frames_reads_a_code_the_frame_gives_no_evidence_of(decoder: Decoder) -> None:
    frame = list(camera_frames(7, seed=7))[6]
    assert frame.condition == "small" and frame.box is not None
    alone = decoder.decode(frame.image)
    assert alone.found == () and alone.undecoded == ()
    hinted = decoder.decode(frame.image, hints=[Region(*frame.box)])
    assert hinted.texts == [frame.text]
    assert hinted.step == "upscale"
    found = hinted.found[0].region
    assert found.overlaps(Region(*frame.box)), "the decoded position is mapped back to the frame"


def test_escalation_stays_within_the_budget(decoder: Decoder, frames: list[LabeledFrame]) -> None:
    escalated = [f for f in frames if decoder.decode(f.image).step not in ("cheap", None)]
    assert escalated, "no frame in the sample needs escalation"
    for f in escalated:
        decoded = Decoder(budget_ms=0.0, clock=standing_clock).decode(f.image)
        assert decoded.found == () and decoded.step is None
        assert decoded.undecoded, "the undecoded evidence is still reported"


def test_only_the_cheap_pass_when_no_steps_are_configured(frames: list[LabeledFrame]) -> None:
    bare = Decoder(BUDGET_MS, steps=())
    for f in frames[:8]:
        assert bare.decode(f.image).step in ("cheap", None)


def test_a_strided_view_into_a_yuv420_buffer_decodes_like_a_copy(
    decoder: Decoder, frames: list[LabeledFrame]
) -> None:
    frame = frames[0]
    # What picamera2 hands over: (height * 3/2, stride) with the Y plane in the first rows.
    yuv = np.full((480 * 3 // 2, 704), 128, np.uint8)
    yuv[:480, :640] = frame.image
    view = yuv[:480, :640]
    assert not view.flags["C_CONTIGUOUS"]
    assert decoder.decode(view).texts == decoder.decode(frame.image.copy()).texts == [frame.text]


def test_bad_frames_and_steps_are_refused(decoder: Decoder) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        decoder.decode(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D uint8"):
        decoder.decode(np.zeros((48, 64), np.float32))
    with pytest.raises(ValueError, match="unknown escalation step"):
        Decoder(BUDGET_MS, steps=["histogram", "magic"])


def test_upscale_interpolates_and_sharpen_keeps_flat_areas() -> None:
    img = np.array([[0, 90], [180, 255]], np.uint8)
    big = upscale(img, 3)
    assert big.shape == (6, 6)
    assert big[0, 0] == 0 and big[0, 3] == 90 and big[3, 0] == 180 and big[3, 3] == 255
    assert big[0, 1] == 30 and big[1, 0] == 60  # a third of the way along each edge
    assert big[5, 5] == 255  # the last pixels are kept, not cut off
    flat = np.full((5, 5), 77, np.uint8)
    assert (sharpen(flat) == 77).all()
    edge = np.zeros((5, 6), np.uint8)
    edge[:, 3:] = 200
    out = sharpen(edge)
    assert out[2, 2] == 0 and out[2, 3] == 255  # both sides pushed apart, clipped
