"""How a plotly figure reaches the browser inside ipywidgets, and stays right after a page reload.

Two ways, on purpose:

- **one** ``FigureWidget`` (the embedding map, which needs click callbacks), built *with* its
  content and restyled in place. A ``FigureWidget`` inside a container (a ``VBox``) hands a
  newly connected page the state it had when it was built; :func:`sync_state` refreshes that
  state after every change, so a reload shows the current picture, not the first one.
- every other figure (the clip view, a video's timeline) as a plain ``go.Figure`` shown in an
  ipywidgets ``Output`` (:func:`show_in`), not as more ``FigureWidget`` s: each ``FigureWidget``
  sends plotly's 4.7 MB widget bundle to the browser, anywidget gives a model 2 s to load it,
  and on a page reload the bigger the widget state, the more often JupyterLab's widget manager
  loses a model it is still restoring ("Error displaying widget: model not found", ipywidgets
  issue #4026). If that happens after a reload, reload the page once more, or display the
  widget again in a new cell: its state lives in the kernel.
"""
from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["sync_state", "show_in"]


def sync_state(fig: Any) -> None:
    """Make a ``FigureWidget``'s connect-time state equal to its current figure (a no-op for a
    plain ``go.Figure``). The front end only stores it; it draws from the restyle messages."""
    if isinstance(fig, go.FigureWidget):
        fig._widget_data = deepcopy(fig._data)
        fig._widget_layout = deepcopy(fig._layout_obj._props)


def show_in(out: Any, fig: go.Figure) -> None:
    """Make the ipywidgets ``Output`` ``out`` show ``fig`` alone, as its plotly JSON (the
    ``plotly_mimetype`` bundle that JupyterLab's plotly extension draws). The kernel sets the
    ``outputs`` trait in one update: no front-end capture is involved, so it works from a click
    callback, before the widget is displayed, and for a page that connects later."""
    bundle = {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
              "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>"}
    out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
