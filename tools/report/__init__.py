"""Architecture reports of Caffe nets (``posebridge report``): a self-contained HTML page with the
graph, the OpenPose structure and a per-layer table; the same tables as Markdown or JSON.
"""

from posebridge.tools.report.document import build_document
from posebridge.tools.report.render import FORMATS, render_report

__all__ = ["FORMATS", "build_document", "render_report"]
