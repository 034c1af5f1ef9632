"""The e2e fixture cannot pass by accident (R: T2, Y3, T1): its end-of-test
check (conftest.Hale.check_clean_exit) fails on a hale that died before it
was stopped, on a sanitizer report or a panic, and on an error line the test
did not declare. Real hale processes; the checks are called directly so
that their failures can be observed here."""
import http.client
import os
import signal
import threading
import time

import pytest

from conftest import Hale, unexpected_output


def test_death_before_stop_fails():  # R: T2, Y3, T1
    h = Hale()
    os.kill(h.proc.pid, signal.SIGKILL)  # from outside, as a crash would
    h.proc.wait(10)
    with pytest.raises(AssertionError, match="before the test stopped it"):
        h.check_clean_exit()


def test_undeclared_error_line_fails_and_declared_passes():  # R: T2, Y3, T1
    # a fatal start-up error: an unparsable PORT is a config "error:" line
    h = Hale(env={"PORT": "abc"}, wait_ready=False)
    h.proc.wait(10)
    with pytest.raises(AssertionError, match="unexpected lines"):
        h.check_clean_exit()
    h = Hale(env={"PORT": "abc"}, wait_ready=False, expect_exit=78,
             expect_errors=[r"^error: PORT: expected an integer"])
    h.proc.wait(10)
    h.check_clean_exit()
    # the declared exit code is checked too
    h = Hale(env={"PORT": "abc"}, wait_ready=False, expect_exit=0,
             expect_errors=[r"^error: PORT"])
    h.proc.wait(10)
    with pytest.raises(AssertionError, match="exit 78, expected 0"):
        h.check_clean_exit()


def test_clean_run_passes():  # R: T2, Y3
    h = Hale()
    assert h.request("GET", "/health/liveness", admin=True)[0] == 200
    h.check_clean_exit()


def test_output_rules():  # R: T2, Y3, T1
    ts = "2026-01-01T00:00:00.000Z"
    assert unexpected_output(ts + "  INFO service: listening\n") == []
    assert unexpected_output(ts + " ERROR store: down\n") == [ts + " ERROR store: down"]
    assert unexpected_output('{"level":"error","msg":"x"}\n')
    assert unexpected_output(ts + " ERROR store: down\n", [r"store: down"]) == []
    # never declarable: sanitizer reports, panics
    for line in ("==1==ERROR: AddressSanitizer: heap-use-after-free",
                 "src/x.c:3:5: runtime error: signed integer overflow",
                 "WARNING: ThreadSanitizer: data race (pid=1)",
                 "hale: fatal internal error at src/x.c:1: boom", "thread panic"):
        assert unexpected_output(line + "\n", [r".*"]) == [line], line


def test_stop_then_exit_code_is_checked():  # R: T2, Y3, L3
    # a hale that cannot drain in time exits 1 on stop: the fixture says so
    h = Hale(env={"APP_SHUTDOWN__TIMEOUT": "200ms"},
             expect_errors=[r"shutdown.timeout passed"])

    def stuck():
        try:
            h.request("GET", "/debug/block?ms=5000", timeout=10)
        except (OSError, http.client.HTTPException):
            pass  # hale exits without answering: that is the point

    t = threading.Thread(target=stuck, daemon=True)
    t.start()
    time.sleep(0.3)
    with pytest.raises(AssertionError, match="exit 1 on stop"):
        h.check_clean_exit()
    t.join(10)
