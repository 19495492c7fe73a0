"""The HTML report renders in a real headless Chromium (Debian's `chromium`): every image decodes, tables are
there, nothing is logged as an error, and a screenshot shows a page that is not blank."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.analysis.test_report import planted_db, report_dir  # noqa: F401  (fixtures)
from tests.services import unavailable

PROBE = """<script>
const report = (m) => console.log("LCLAB-ERROR " + m);
window.addEventListener("error", (e) => report(e.message || ("failed to load " + (e.target.src || "").slice(0, 40))), true);
const origError = console.error; console.error = (...a) => { report(a.join(" ")); origError(...a); };
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
  const d = document.createElement("div"); d.id = "lclab-probe";
  d.textContent = `images=${imgs.length} broken=${broken} tables=${document.querySelectorAll("table").length}`;
  document.body.appendChild(d); console.log("lclab-probe-ready");
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    return found


def run(*args, timeout=120) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_html_report_renders_its_plots_and_tables_in_headless_chromium(report_dir, tmp_path):  # noqa: F811
    html = (report_dir / "report.html").read_text()
    expected_images = html.count('src="data:image/png;base64,')
    expected_tables = html.count("<table")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    r = run("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert "lclab-probe-ready" in r.stderr, r.stderr[-2000:]  # console capture works, so silence below means something
    found = re.search(r'<div id="lclab-probe">images=(\d+) broken=(\d+) tables=(\d+)</div>', r.stdout)
    assert found, r.stdout[-500:]
    assert (int(found[1]), int(found[2]), int(found[3])) == (expected_images, 0, expected_tables)
    assert expected_images >= 8 and expected_tables >= 10
    assert "LCLAB-ERROR" not in r.stderr, [line for line in r.stderr.splitlines() if "LCLAB-ERROR" in line]

    shot = tmp_path / "report.png"
    run("--window-size=1280,3000", f"--screenshot={shot}", (report_dir / "report.html").as_uri())
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 3000)
    assert ImageStat.Stat(image).stddev[0] > 20  # text, tables and plots, not an empty page
    # the plots are in the page: a screenshot of the page without its images differs substantially
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r'<img [^>]*>', "", html))
    shot_bare = tmp_path / "bare.png"
    run("--window-size=1280,3000", f"--screenshot={shot_bare}", bare.as_uri())
    assert list(Image.open(shot_bare).convert("L").getdata()) != list(image.getdata())
