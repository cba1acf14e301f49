"""The README's test command and `.ci/run` must not drift apart."""

from __future__ import annotations

import pathlib
import re
import shlex

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 2, "README: expected the two set-up commands as its first bash blocks"
    return [b.strip() for b in blocks[:2]]


def _steps(command: str) -> list[list[str]]:
    steps = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[:2] == ["python", "-m"] and words[2:3] == ["pip"]:
            words = words[2:]
        steps.append([w for w in words if w != "--quiet"])
    return steps


def test_ci_runs_exactly_the_readme_test_command():
    _, test_cmd = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_steps = [_steps(line)[0] for line in ci.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
                and re.match(r"(python -m )?(pip|bash|pytest)|python -m pytest", line.strip())]
    readme_steps = _steps(test_cmd)
    # Every README step runs in CI, in the same order (CI may add its own checks in between).
    it = iter(ci_steps)
    for step in readme_steps:
        assert any(s == step for s in it), f".ci/run does not run the README step {step!r} in order"


def test_readme_demo_command_pins_cpu_torch_first():
    demo_cmd, test_cmd = _readme_commands()
    for cmd in (demo_cmd, test_cmd):
        assert _steps(cmd)[0] == ["pip", "install", "torch==2.13.0"]
    assert _steps(demo_cmd)[-1] == ["ptycho-nb", "demo"]
