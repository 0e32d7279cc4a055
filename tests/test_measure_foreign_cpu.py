"""Foreign CPU use while a row is timed: /proc/stat's busy time minus this process's own."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from passt.measure import foreign_cpu
from passt.measure.foreign_cpu import FOREIGN_CPU_LIMIT, ForeignCpu

pytestmark = pytest.mark.skipif(not foreign_cpu.PROC_STAT.exists(), reason="needs /proc/stat")


def test_the_arithmetic_on_a_scripted_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    clock = iter([0.0, 2.0])
    own = iter([1.0, 1.5])  # this process: 0.5 s of CPU inside the block
    monkeypatch.setattr(foreign_cpu, "PROC_STAT", stat)
    monkeypatch.setattr(foreign_cpu.os, "sysconf", lambda name: 100)
    monkeypatch.setattr(foreign_cpu.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(foreign_cpu, "_own_s", lambda: next(own))
    monkeypatch.setattr(foreign_cpu.time, "perf_counter", lambda: next(clock))
    samples = iter([(100, 50, 10), (400, 50, 60)])

    def write_next() -> None:
        user, system, steal = next(samples)
        stat.write_text(f"cpu  {user} 0 {system} 900 5 0 0 {steal} 7 0\ncpu0 1 2 3\n")

    write_next()
    block = ForeignCpu().__enter__()
    write_next()
    block.__exit__(None, None, None)
    # busy: (300 user + 50 steal) ticks = 3.5 s; ours 0.5 s; 3.0 s over 2 s x 2 CPUs
    assert block.fraction == pytest.approx(0.75) and block.too_busy


def test_a_busy_loop_beside_us_is_seen():
    loop = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)  # the loop is running
        with ForeignCpu() as block:
            time.sleep(1.0)
    finally:
        loop.kill()
        loop.wait()
    # one core of the machine's, at the least (a 2-core machine: 0.5)
    assert block.fraction > FOREIGN_CPU_LIMIT and block.too_busy
