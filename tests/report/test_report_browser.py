"""The report renders in headless Chromium: every figure decodes and the page is not blank."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_html import make_run  # noqa: E402

from gliotype.report import write_report  # noqa: E402

pytestmark = pytest.mark.browser

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no chromium, chromium-browser or google-chrome on PATH (apt-get install -y chromium)")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def report(tmp_path) -> Path:
    a, _ = make_run(tmp_path / "baseline", signal=0.5, seed=1)
    b, _ = make_run(tmp_path / "grade", signal=1.5, classes=("2", "3", "4"), target="grade", n=45)
    return write_report([a, b], tmp_path / "report.html")


def test_every_figure_decodes_in_the_browser(tmp_path, report):
    done = run_chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', done.stdout)
    assert loaded, "the report's load script did not run: " + done.stdout[:500]
    assert loaded.group(1) == loaded.group(2) == "9"
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', done.stdout)]
    assert len(widths) == 9 and min(widths) >= 200


def test_screenshot_is_not_blank(tmp_path, report):
    shot = tmp_path / "shot.png"
    done = run_chromium(tmp_path, "--window-size=1200,3000", f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (3000, 1200, 3)
    assert pixels.std() > 20  # a white page has std 0
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 100)  # matplotlib's C0 blue curves and the confusion matrix
    assert blue.sum() > 2000
