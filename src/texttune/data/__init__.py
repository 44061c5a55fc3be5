"""Data sources and column mapping: the only package that knows file formats."""

from texttune.data.columns import ColumnRole, select_columns
from texttune.data.sources import Table, from_lists, load_table
from texttune.data.splits import holdout, take

__all__ = ["ColumnRole", "Table", "from_lists", "holdout", "load_table", "select_columns", "take"]
