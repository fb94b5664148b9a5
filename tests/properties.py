"""Hypothesis settings for every property test, chosen by BYOI_HYPOTHESIS_PROFILE.

`ci` (the default) is deterministic: each property test draws the same examples on every
run (`derandomize`), so a red run means a change broke something, not an unlucky draw.
`long` draws fresh random examples, three times as many, to look for failures no one has
seen yet (`.ci/run` runs it after the main run); a failure prints its example and the
`@reproduce_failure` blob that replays it.
"""

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("BYOI_HYPOTHESIS_PROFILE") or "ci"
SCALES = {"ci": 1, "long": 3}  # each test's example count is multiplied by this
if PROFILE not in SCALES:
    raise SystemExit(f"BYOI_HYPOTHESIS_PROFILE={PROFILE!r}: expected one of {', '.join(SCALES)}")

_ANY_SPEED = {
    "deadline": None,  # shared 2-core CI machines: time limits would make tests flaky
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", derandomize=True, max_examples=100, **_ANY_SPEED)
settings.register_profile(
    "long", derandomize=False, max_examples=300, print_blob=True, **_ANY_SPEED
)
settings.load_profile(PROFILE)


def examples(count: int) -> settings:
    """Settings for a property test drawing `count` examples in the main run."""
    return settings(max_examples=count * SCALES[PROFILE])
