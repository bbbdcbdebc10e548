"""Test configuration shared by the whole suite."""

import os

from hypothesis import HealthCheck, settings

# CI runs derandomized so that a red run can be reproduced exactly; locally examples vary.
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
