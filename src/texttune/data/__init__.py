"""Data sources and column mapping: the only package that knows file formats."""

from texttune.data.columns import ColumnRole, select_columns
from texttune.data.sources import Table, from_lists, load_table
from texttune.data.splits import drop_rows, holdout, take

__all__ = ["ColumnRole", "Table", "drop_rows", "from_lists", "holdout", "load_table", "select_columns", "take"]
