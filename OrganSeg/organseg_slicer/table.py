"""The organ volume table: one row per organ segment (name, volume in mL, voxels, HU statistics, plausibility flags)."""
from __future__ import annotations

import math

import slicer
import vtk

#: (column title, key in an organseg.results.stats row, unit)
COLUMNS = (("Organ", "name", ""), ("Volume [mL]", "volume_ml", "mL"), ("Voxels", "voxels", ""),
           ("Mean HU", "mean_hu", "HU"), ("Std HU", "std_hu", "HU"), ("Min HU", "min_hu", "HU"),
           ("Max HU", "max_hu", "HU"), ("Flags", "flags", ""))
TEXT = ("name", "flags")  #: string columns; flags: the codes joined by ';', empty when nothing is wrong


def fill_table(table_node: slicer.vtkMRMLTableNode, rows: list[dict]) -> None:
    """Replace the table's contents by the statistics rows (organseg.results.stats.organ_stats dictionaries).

    Empty organs have 0 mL and NaN HU statistics; rows without flags (not checked yet) have an empty cell.
    """
    table = vtk.vtkTable()
    for title, key, _ in COLUMNS:
        array = vtk.vtkStringArray() if key in TEXT else vtk.vtkIntArray() if key == "voxels" else vtk.vtkDoubleArray()
        array.SetName(title)
        for row in rows:
            value = ";".join(f["code"] for f in row.get("flags", [])) if key == "flags" else row[key]
            array.InsertNextValue(math.nan if value is None else value)
        table.AddColumn(array)
    was_modifying = table_node.StartModify()
    table_node.SetAndObserveTable(table)
    for title, _, unit in COLUMNS:
        if unit:
            table_node.SetColumnUnitLabel(title, unit)
    table_node.EndModify(was_modifying)


def table_rows(table_node: slicer.vtkMRMLTableNode) -> list[dict]:
    """The table back as dictionaries keyed like organseg.results.stats rows (for tests and scripts)."""
    table = table_node.GetTable()
    rows = []
    for r in range(table.GetNumberOfRows()):
        rows.append({key: table.GetColumnByName(title).GetValue(r) for title, key, _ in COLUMNS})
    return rows
