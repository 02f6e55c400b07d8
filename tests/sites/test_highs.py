"""HiGHS prints its banner on stdout from C++: new_highs sends it to the debug log instead."""

import subprocess
import sys


def test_new_highs_prints_nothing_on_stdout_and_logs_the_banner():
    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)\n"
            "from kantong.engine.sites.highs import new_highs\n"
            "h = new_highs()\n"
            "print('after')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout == "after\n"
    assert "HiGHS" in out.stderr and "Copyright" in out.stderr
