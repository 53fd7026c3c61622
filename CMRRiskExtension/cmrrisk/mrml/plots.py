"""Plot nodes: predicted survival curves as a ``vtkMRMLPlotChartNode`` (Slicer's Plots module)."""

from __future__ import annotations

from .bridge import add_table, place_in_study


def survival_chart(scene, curves: dict, name: str, reference_node=None, time_label: str = "time"):
    """A chart of one or several survival curves.

    ``curves``: {series name: (times, survival probabilities)}. Each curve becomes a table node
    (columns ``time``, ``survival``) and a line plot series; the chart has axis titles and a
    survival axis fixed to [0, 1]. Returns (chart node, {series name: (series node, table node)}).
    Show it in Slicer with ``slicer.modules.plots.logic().ShowChartInLayout(chart)``."""
    if not curves:
        raise ValueError("survival_chart: no curve given.")
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    made = {}
    for label, (times, surv) in curves.items():
        times, surv = [float(t) for t in times], [float(s) for s in surv]
        if len(times) != len(surv) or not times:
            raise ValueError(f"survival_chart: curve {label!r} needs as many times as probabilities.")
        table = add_table(scene, f"{name} {label}", {"time": times, "survival": surv}, reference_node)
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{label}")
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("time")
        series.SetYColumnName("survival")
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        series.SetLineStyle(series.LineStyleSolid)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        made[label] = (series, table)
    chart.SetTitle(name)
    chart.SetXAxisTitle(time_label)
    chart.SetYAxisTitle("predicted survival probability")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)
    chart.SetLegendVisibility(len(curves) > 1)
    if reference_node is not None:
        place_in_study(scene, chart, reference_node)
    return chart, made
