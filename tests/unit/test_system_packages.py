""".ci/system-packages: what `make test` does about the Debian packages the system tests need.

The script runs for real, under bash, with PATH set to a folder of stand-ins for the programs it
calls (`id`, `sudo`, `apt-get`), so each case is the same whoever runs the tests and the
machine's packages are never touched. The stand-in apt-get records its arguments and "installs"
a package by putting its program on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "system-packages"
BASH = shutil.which("bash") or "/bin/bash"
# Names no machine has, so the sbin directories the script also searches cannot hold them.
PACKAGES = ["openamt-test-metrics-db:openamt-test-metricsd", "openamt-test-sync:openamt-test-sync"]
INSTALL = (
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends "
    "openamt-test-metrics-db openamt-test-sync"
)


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def machine(tmp_path: Path, *, uid: int, sudo: bool = False, apt: bool = True) -> Path:
    """A PATH folder: the shell tools the script uses, `id -u` printing `uid`, and optionally a
    passwordless sudo and an apt-get that installs the test packages' programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("env", "cat", "chmod"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    stand_in(bin_dir, "id", f'[ "$1" = -u ] && echo {uid}')
    if sudo:
        stand_in(bin_dir, "sudo", '[ "$1" = -n ] && shift; echo "sudo $*" >> "$CALLS"; "$@"')
    if apt:
        programs = {"openamt-test-metrics-db": "openamt-test-metricsd"}  # sync "fails to install"
        installs = "\n".join(
            f'  {package}) printf "#!{BASH}\\n" > "{bin_dir}/{program}"; '
            f'chmod +x "{bin_dir}/{program}";;'
            for package, program in programs.items()
        )
        stand_in(
            bin_dir,
            "apt-get",
            f'echo "apt-get $*" >> "$CALLS"\n'
            f'for package in "$@"; do case "$package" in\n{installs}\n  *) ;;\nesac; done',
        )
    return bin_dir


def run(bin_dir: Path, *packages: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = bin_dir.parent / "calls.txt"
    result = subprocess.run(
        [BASH, str(SCRIPT), *packages],
        env={"PATH": str(bin_dir), "CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_nothing_runs_and_nothing_is_said_when_the_programs_are_there(tmp_path: Path) -> None:
    bin_dir = machine(tmp_path, uid=0)
    for pair in PACKAGES:
        stand_in(bin_dir, pair.split(":")[1], "true")

    result, calls = run(bin_dir, *PACKAGES)

    assert (result.returncode, result.stdout, result.stderr, calls) == (0, "", "", [])


@pytest.mark.parametrize(
    ("uid", "sudo", "apt"),
    [(1000, False, True), (1000, False, False), (0, False, False)],
    ids=["a-user-without-sudo", "no-apt-get", "root-without-apt-get"],
)
def test_without_a_way_to_install_it_stops_with_the_exact_command(
    uid: int, sudo: bool, apt: bool, tmp_path: Path
) -> None:
    bin_dir = machine(tmp_path, uid=uid, sudo=sudo, apt=apt)

    result, calls = run(bin_dir, *PACKAGES)

    assert result.returncode == 1 and calls == []
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "make test: the system tests need Debian packages that are not installed: "
        "openamt-test-metrics-db openamt-test-sync."
    )
    assert f"    {INSTALL}" in lines
    assert "No test was run." in result.stderr


@pytest.mark.parametrize(("uid", "sudo"), [(0, False), (1000, True)], ids=["root", "sudo"])
def test_root_or_passwordless_sudo_installs_only_what_is_missing(
    uid: int, sudo: bool, tmp_path: Path
) -> None:
    bin_dir = machine(tmp_path, uid=uid, sudo=sudo)
    stand_in(bin_dir, "openamt-test-sync", "true")  # already there: not asked for

    result, calls = run(bin_dir, *PACKAGES)

    assert result.returncode == 0, result.stderr
    apt_calls = [call for call in calls if call.startswith("apt-get")]
    assert apt_calls == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends openamt-test-metrics-db",
    ]
    assert [call.startswith("sudo") for call in calls].count(True) == (3 if sudo else 0)
    assert (bin_dir / "openamt-test-metricsd").exists()
    assert "installing the Debian packages the system tests need" in result.stderr


def test_an_install_that_leaves_a_program_missing_fails_naming_it(tmp_path: Path) -> None:
    bin_dir = machine(tmp_path, uid=0)

    result, _ = run(bin_dir, *PACKAGES)

    assert result.returncode == 1
    assert "the programs of openamt-test-sync are still not found on PATH" in result.stderr


def test_ci_runs_only_make_test() -> None:
    lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == "exec make test"
    assert not any("apt-get" in line for line in lines)
