"""Padding rules (matcher/padding.py): every share a phone makes, decoy or not, has one size; answers too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exposure.v1 import keys_pb2, sharing_pb2
from matcher.model import MAX_KEYS_PER_SUBMISSION
from matcher.padding import MIN_PADDING, REQUEST, RESPONSE, Sizes, padded

keys = st.builds(
    lambda data, start, period, onset, tx, bitmap: keys_pb2.DiagnosisKey(
        key_data=data,
        rolling_start_interval_number=start,
        rolling_period=period,
        report_type=keys_pb2.RECURSIVE,
        days_since_onset_of_symptoms=onset,
        tx_power_dbm=tx,
        contact_intervals=bitmap,
    ),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**32 - 1),
    st.integers(1, 144),
    st.integers(-14, 14),
    st.integers(-40, 20),
    st.binary(max_size=18),
)
codes = st.sampled_from(["ABCDEFGHJKMN", "abcd-efgh-jkmn", "ABCD EFGH JKMN", "ABCD - EFGH - JKMN"])


@settings(max_examples=200, deadline=None)
@given(codes, st.lists(keys, min_size=1, max_size=MAX_KEYS_PER_SUBMISSION), st.booleans())
def test_every_share_of_up_to_the_key_limit_with_any_fields_a_phone_sets_pads_to_the_floor(code, key_list, decoy):
    request = sharing_pb2.SubmitWithCodeRequest(code=code, keys=key_list, decoy=decoy)
    assert len(padded(request, REQUEST).SerializeToString()) == REQUEST.floor
    assert set(request.padding) <= {0}  # zero bytes: the padding carries nothing


@given(st.integers(0, 40_000), st.sampled_from([REQUEST, RESPONSE, Sizes(floor=16, step=1)]))
def test_a_message_of_any_size_pads_exactly_to_a_size_of_its_steps_with_room_for_the_least_padding(size, sizes):
    message = sharing_pb2.SubmitWithCodeResponse(rejected=[keys_pb2.KeyRejection(reason="r" * size)])
    unpadded = message.ByteSize()
    total = len(padded(message, sizes).SerializeToString())
    assert total >= unpadded + MIN_PADDING and len(message.padding) >= MIN_PADDING
    assert total == sizes.floor or (total > sizes.floor and (total - sizes.floor) % sizes.step == 0)
    smaller = total - sizes.step
    # the smallest such size, unless the smaller one left exactly 16,387 bytes, which no padding field fills
    assert total == sizes.floor or smaller < unpadded + 3 + MIN_PADDING or smaller - unpadded == 16387


def test_the_one_room_no_padding_field_fills_exactly_is_passed_over_for_the_next_size():
    unpadded = sharing_pb2.SubmitWithCodeResponse(rejected=[keys_pb2.KeyRejection(reason="r" * 1000)]).ByteSize()
    sizes = Sizes(floor=unpadded + 16387, step=10)
    assert (
        padded(
            sharing_pb2.SubmitWithCodeResponse(rejected=[keys_pb2.KeyRejection(reason="r" * 1000)]), sizes
        ).ByteSize()
        == sizes.floor + 10
    )


def test_padding_again_gives_the_same_size():
    message = padded(sharing_pb2.SubmitWithCodeResponse(accepted=3), RESPONSE)
    assert padded(message, RESPONSE).ByteSize() == RESPONSE.floor


def test_answers_pad_to_one_size_whether_they_accept_one_key_or_thirty_and_embargo_some():
    sizes = {
        padded(sharing_pb2.SubmitWithCodeResponse(accepted=n, embargoed=e), RESPONSE).ByteSize()
        for n in range(MAX_KEYS_PER_SUBMISSION + 1)
        for e in (0, 1, n)
    }
    assert sizes == {RESPONSE.floor}
