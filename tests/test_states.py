"""The state machine of SPEC section 2."""

import pytest

from byoi_bot.core.states import (
    ACTIVE_STATES,
    TRANSITIONS,
    IllegalTransition,
    State,
    check_transition,
)

LEGAL = [
    (State.PENDING_APPROVAL, State.APPROVED),
    (State.PENDING_APPROVAL, State.REJECTED),
    (State.PENDING_APPROVAL, State.CANCELLED),
    (State.PENDING_APPROVAL, State.EXPIRED),
    (State.PENDING_APPROVAL, State.FAILED),  # its checksum did not match
    (State.APPROVED, State.SUBMITTING),
    (State.SUBMITTING, State.DEPLOYING),
    (State.SUBMITTING, State.FAILED),
    (State.DEPLOYING, State.DONE),  # the boot gate is off for the server
    (State.DEPLOYING, State.FAILED),
    (State.DEPLOYING, State.BOOTING),  # OVHcloud's done: the boot gate opens
    (State.BOOTING, State.DONE),
    (State.BOOTING, State.FAILED),
]


@pytest.mark.parametrize(("current", "wanted"), LEGAL)
def test_spec_edges_are_allowed(current, wanted):
    check_transition("r-x", current, wanted)


@pytest.mark.parametrize("final", [s for s in State if not TRANSITIONS[s]])
def test_final_states_allow_nothing(final):
    assert final.is_final and final not in ACTIVE_STATES
    for wanted in State:
        with pytest.raises(IllegalTransition, match="final state"):
            check_transition("r-x", final, wanted)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (State.PENDING_APPROVAL, State.SUBMITTING),
        (State.PENDING_APPROVAL, State.DEPLOYING),
        (State.APPROVED, State.DONE),
        (State.SUBMITTING, State.APPROVED),
        (State.DEPLOYING, State.SUBMITTING),
        (State.BOOTING, State.DEPLOYING),
        (State.BOOTING, State.CANCELLED),  # nothing left to cancel at OVHcloud
    ],
)
def test_skipping_steps_is_refused_with_a_clear_message(current, wanted):
    with pytest.raises(IllegalTransition) as info:
        check_transition("r-abc", current, wanted)
    message = str(info.value)
    assert "r-abc" in message and str(current) in message and str(wanted) in message


def test_active_states_hold_the_server():
    assert {
        State.PENDING_APPROVAL,
        State.APPROVED,
        State.SUBMITTING,
        State.DEPLOYING,
        State.BOOTING,
    } == ACTIVE_STATES
