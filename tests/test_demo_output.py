"""ltn-demo's terminal output: each command's output goes to its stage's log; the terminal gets the command, a few
progress lines, and on a failure the log's last lines and the command's exit code."""

from __future__ import annotations

import sys

import pytest

from latent_triplane_ns.scripts import demo

CHILD = """
import sys, time
for i in range(120):
    print(f"config line {i}")
print("a warning on stderr", file=sys.stderr)
print("Step (% Done)       Train Iter (time)")
for step in (110, 220, 440):
    print(f"\\x1b[30;42m{step} ({step / 11:.02f}%)        12 ms \\x1b[0m", flush=True)
    time.sleep(float(sys.argv[2]))
print("last line")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def child(tmp_path, monkeypatch):
    """A command that prints like ns-train (a config dump, stderr, `Step (% Done)` rows) and exits with argv[1]."""
    monkeypatch.setattr(demo, "POLL_SECONDS", 0.05)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return lambda code, pause=0.0: [sys.executable, str(script), str(code), str(pause)]


def test_a_commands_output_goes_to_its_stage_log_and_the_terminal_gets_a_few_lines(child, tmp_path, capsys):
    logs = tmp_path / "logs"
    seconds = demo.run(child(0, pause=0.2), stage="stage1", log_dir=logs)
    assert seconds > 0
    log = (logs / "stage1.log").read_text()
    assert "config line 0" in log and "config line 119" in log and "a warning on stderr" in log and "last line" in log
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"$ {sys.executable} {tmp_path / 'child.py'} 0 0.2"
    assert lines[1] == f"stage1: started; its output goes to {logs / 'stage1.log'}"
    assert lines[-1].startswith("stage1: done in ") and lines[-1].endswith(f"s; output: {logs / 'stage1.log'}")
    # the training progress at a new tenth of the steps, parsed from the output (rows read together: the last)
    progress = [line.split(",")[0] for line in lines[2:-1]]
    expected = ["  stage1: step 110 (10% done)", "  stage1: step 220 (20% done)", "  stage1: step 440 (40% done)"]
    assert progress[-1] == expected[-1] and set(progress) <= set(expected) and progress == sorted(progress)
    assert "config line" not in out and "warning" not in out


def test_a_quiet_command_gets_a_still_running_line(child, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "QUIET_SECONDS", 0.15)
    demo.run(child(0, pause=0.4), stage="eval", log_dir=tmp_path / "logs")
    out = capsys.readouterr().out
    assert "  eval: still running (last: step " in out
    assert len(out.splitlines()) < 20


def test_a_failing_command_prints_its_logs_tail_and_exits_with_its_code(child, tmp_path, capsys):
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit) as exit_info:
        demo.run(child(7), stage="render", log_dir=logs)
    assert exit_info.value.code == 7
    out = capsys.readouterr().out
    log = logs / "render.log"
    assert f"--- the last 30 lines of {log} ---" in out
    # 126 lines: 120 config lines, one on stderr, the header, three rows, the last line
    assert "config line 96" in out and "config line 95" not in out and "last line" in out
    assert "\x1b" not in out  # the rows' colours are not replayed on the terminal
    assert "440 (40.00%)        12 ms" in out
    assert out.splitlines()[-1].startswith("render failed after ")
    assert f"(exit code 7); its whole output: {log}" in " ".join(out.split())


def test_a_command_killed_by_a_signal_exits_with_128_plus_the_signal(tmp_path, capsys):
    command = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]
    with pytest.raises(SystemExit) as exit_info:
        demo.run(command, stage="stage2", log_dir=tmp_path / "logs")
    assert exit_info.value.code == 128 + 15


def test_progress_lines_show_each_new_tenth_once(capsys):
    lines = demo._ProgressLines("stage2", start=0.0)
    for chunk in (
        b"12 (1.00%) x\n1",
        b"10 (10.00%) x\n",
        b"120 (10.91%) x\n",
        b"550 (50.00%) x\n",
        b"1000 (100.00%)\n",
    ):
        lines.feed(chunk)
    out = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()]
    # a row split between two reads is read whole; 100% is left to the line that ends the stage
    assert out == ["  stage2: step 110 (10% done)", "  stage2: step 550 (50% done)"]
    assert lines.latest == (1000, 100.0)


def test_latest_progress_reads_nerfstudios_redrawn_rows():
    text = "Step (% Done)\n\x1b[2A100 (9.09%)   1 s \x1b[0m\n\x1b[30;42m440 (40.00%)  2 s \x1b[0m\nsaved 12 (3%)\n"
    assert demo.latest_progress(text) == (440, 40.0)
    assert demo.latest_progress("no rows here: 12 (50.00%) mid-line") is None
