"""The PostgreSQL and Redis unit tests never pass by doing nothing (R: T1,
Y5): without their service URL they exit 77, which ctest reports as "Not
Run", and inside make test (HALE_REQUIRE_SERVICES=1, set by
scripts/run-tests.sh) they fail."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("HALE_UNIT_BUILD", os.path.join(ROOT, "build/debug"))
TESTS = ["test_pg_store", "test_cache_redis"]


def run(name, **env):
    exe = os.path.join(BUILD, name)
    assert os.access(exe, os.X_OK), exe + " missing: make debug"
    e = {k: v for k, v in os.environ.items()
         if k not in ("HALE_TEST_PG_URL", "HALE_TEST_REDIS_URL", "HALE_REQUIRE_SERVICES")}
    e.update(env)
    return subprocess.run([exe], env=e, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", TESTS)
def test_missing_url_fails_inside_make_test(name):  # R: T1, Y5
    r = run(name, HALE_REQUIRE_SERVICES="1")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "HALE_REQUIRE_SERVICES=1" in r.stderr


@pytest.mark.parametrize("name", TESTS)
def test_missing_url_is_not_run_elsewhere(name):  # R: T1, Y5
    r = run(name)
    assert r.returncode == 77, (r.returncode, r.stderr)
    assert "not run" in r.stderr


def test_run_tests_requires_services():  # R: T1
    # the same script that make test runs sets the switch for every suite
    r = subprocess.run(["bash", "-c", "source <(sed -n '/^export HALE_REQUIRE_SERVICES/p' "
                        "scripts/run-tests.sh); echo $HALE_REQUIRE_SERVICES"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.strip() == "1", r.stdout + r.stderr
