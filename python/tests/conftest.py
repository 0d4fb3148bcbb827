"""Shared helpers: the repository, the `lmkit` binary the Python results are compared with,
and a small labelled data set written per test."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY = str(FIXTURES / "tiny-sst")

# Known data sets ("emotion") are found under shared/data beside the repository's ancestors;
# run from the repository so that lookup works wherever pytest is started.
os.chdir(REPO)


def lmkit_bin() -> str:
    """The CLI from this checkout (built once, in the dev profile `cargo test` shares)."""
    exe = os.environ.get("LMKIT_BIN") or str(REPO / "target" / "debug" / "lmkit")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "-p", "lmkit-cli"], cwd=REPO, check=True)
    return exe


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([lmkit_bin(), *args], cwd=REPO, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"lmkit {' '.join(args)} failed:\n{r.stderr}")
    return r


def cli_json(*args: str) -> list:
    return [json.loads(l) for l in cli(*args).stdout.splitlines() if l.strip()]


def write_splits(folder: Path, rows: int = 24) -> Path:
    """train/validation/test CSVs of two separable classes (pos, neg)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        lines = ["text,label"]
        for i in range(rows):
            t, l = ("what a lovely happy day", "pos") if i % 2 == 0 else ("this is awful and sad", "neg")
            lines.append(f"{t} {'very ' * (i % 5)}{i},{l}")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session", autouse=True)
def sentiment_default():
    """The sentiment default, lmkit/sentiment-sst2, is built by lmkit, not downloaded (about
    7 minutes). A machine without it (a fresh CI machine) gets a CI-sized build on 3,000 SST-2
    phrases; a later plain `lmkit fetch lmkit/sentiment-sst2` replaces it with the full one."""
    import lmkit

    lmkit.fetch("lmkit/sentiment-sst2", train_limit=3000)


@pytest.fixture
def splits(tmp_path: Path) -> Path:
    return write_splits(tmp_path / "data")
