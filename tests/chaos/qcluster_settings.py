"""Settings for the qcluster processes of tests/chaos/test_two_qclusters.py: the test settings (same
SECRET_KEY, so both clusters and the test process sign and read the same task payloads) plus the chaos
hooks app. Q_SYNC, the database and the cache come from the environment the test sets."""

from config.settings_test import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.chaos.apps.ChaosClusterConfig"]  # noqa: F405
