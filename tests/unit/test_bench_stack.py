"""`owc bench resources`: how the actions service's idle CPU is told apart from its work on results."""

from __future__ import annotations

import pytest

from tools.bench.stack import idle_cpu


def test_idle_cpu_counts_only_the_quiet_intervals() -> None:
    # one sample a second: (time, CPU seconds, an event or a request since the previous sample)
    samples = [(0.0, 0.0, False), (1.0, 0.001, False), (2.0, 0.5, True), (3.0, 0.6, False),
               (4.0, 0.601, False), (5.0, 0.602, False)]
    percent, quiet_s, busy_s = idle_cpu(samples)
    # the interval with the event and the one after it (a delivery straddling the sample) are busy
    assert (quiet_s, busy_s) == (3.0, 2.0)
    assert percent == pytest.approx(0.1)


def test_idle_cpu_without_a_quiet_interval_is_unknown() -> None:
    assert idle_cpu([(0.0, 0.0, False), (1.0, 0.2, True), (2.0, 0.3, True)]) == (None, 0.0, 2.0)
    assert idle_cpu([(0.0, 0.0, False)]) == (None, 0.0, 0.0)


def test_every_process_of_a_run_is_named_from_its_command_line() -> None:
    from tools.bench.resources import process_name

    py = "/x/.venv/bin/python"
    assert process_name([py, "-m", "services", "run"], root=True, one_process=True) == "keeper"
    assert process_name([py, "-m", "services", "run", "--processes"], root=True, one_process=False) == "supervisor"
    assert process_name(["/usr/bin/redis-server", "127.0.0.1:6390"], root=False, one_process=True) == "redis"
    assert process_name([py, "-m", "services.runner.inproc"], root=False, one_process=True) == "stack"
    assert process_name([py, "-m", "services", "inference"], root=False, one_process=False) == "inference"


def test_the_stack_threads_cpu_is_told_apart_by_service_from_the_thread_names() -> None:
    """One process: a service's thread is named ``owc-<service>`` (threads it starts inherit the name); the bench
    reads each thread's CPU time (ns) and sums it by service."""
    import os
    import threading
    import time

    from services.runner.host import name_os_thread
    from tools.bench.resources import thread_cpu

    done = threading.Event()
    seen: dict[str, float] = {}

    def service() -> None:
        name_os_thread("owc-capture")
        end = time.thread_time() + 0.05
        while time.thread_time() < end:  # 50 ms of CPU
            pass
        for _tid, (name, seconds) in thread_cpu(os.getpid()).items():
            seen[name] = seen.get(name, 0.0) + seconds
        done.set()

    thread = threading.Thread(target=service)
    thread.start()
    thread.join(10)
    assert done.is_set()
    assert seen.get("capture", 0.0) >= 0.04
    assert "main" in seen


def test_wakeups_count_every_thread_of_a_process() -> None:
    """A thread that sleeps 20 times adds at least 20 context switches to its process's count (not only the
    main thread's, which is all ``/proc/<pid>/status`` says).

    Counted in a child process of two threads: in this one, threads left by earlier tests can end while it
    counts, and an ended thread's switches leave the sum."""
    import subprocess
    import sys

    from tools.bench.resources import wakeups

    # the sleeper stays alive (waiting on ``hold``) while it is counted: an ended thread leaves /proc
    script = ("import threading, time\n"
              "slept, hold = threading.Event(), threading.Event()\n"
              "def sleeper():\n"
              "    input()\n"
              "    for _ in range(20): time.sleep(0.001)\n"
              "    slept.set(); hold.wait()\n"
              "threading.Thread(target=sleeper, daemon=True).start()\n"
              "print('ready', flush=True)\n"
              "slept.wait(); print('done', flush=True)\n"
              "input()\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        start = wakeups(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        end = wakeups(child.pid)
    finally:
        child.kill()
        child.wait()
    assert end - start >= 20


def test_a_window_compares_runs_only_when_it_holds_whole_demo_loops() -> None:
    from tools.bench.resources import commands_per_s, whole_loops

    assert whole_loops(60.0, 30.0) and whole_loops(30.5, 30.0) and whole_loops(90.0, 30.0)
    assert not whole_loops(40.0, 30.0) and not whole_loops(4.0, 30.0) and not whole_loops(45.0, 30.0)
    # the bench's own commands are taken off each command's rate; a command it alone ran is left out
    rates = commands_per_s({"xadd": 10, "info": 5}, {"xadd": 50, "info": 6, "get": 2}, {"info": 1}, 10.0)
    assert rates == {"xadd": 4.0, "get": 0.2}
