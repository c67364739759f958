"""Reports of an evaluation: ``report.md``, a self-contained ``report.html`` (plots as base64 PNG) and a
one-screen rich terminal summary.

    from alignkit.reporting import write_reports, summary
    write_reports(report, run_dir)      # {"report_md": Path, "report_html": Path}
    summary(report)                     # prints the main table and the verdicts
"""

from __future__ import annotations

from alignkit.reporting.render import markdown, to_html, write_reports
from alignkit.reporting.terminal import summary

__all__ = ["markdown", "to_html", "write_reports", "summary"]
