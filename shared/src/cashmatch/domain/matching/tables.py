"""Tables as the matcher reads them: DataFrames or `Columns` (named numpy arrays), and readers
giving a column of either as the numpy array blocking and features work on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


class Columns:
    """Equal-length named numpy columns: what `prepare` takes besides DataFrames.

    A service answering one transfer builds these from its validated request; building two
    DataFrames instead costs more than that transfer's blocking. Training reads whole frames
    (`Prepared.transfer_frame`), which `to_frame` gives.
    """

    __slots__ = ("_data", "_rows")

    def __init__(self, data: Mapping[str, np.ndarray]) -> None:
        lengths = {name: len(values) for name, values in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of different lengths: {lengths}")
        self._data = dict(data)
        self._rows = next(iter(lengths.values()), 0)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __len__(self) -> int:
        return self._rows

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self._data)

    def take(self, rows: np.ndarray) -> Columns:
        """The rows a boolean mask or an index array selects, renumbered from 0."""
        return Columns({name: v[rows] for name, v in self._data.items()})

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        """The columns side by side as one (rows, columns) array."""
        if not self._data:
            return np.zeros((self._rows, 0), dtype=dtype)
        return np.column_stack([v.astype(dtype, copy=False) for v in self._data.values()])

    def assign(self, **columns: np.ndarray) -> Columns:
        """A copy with these columns added or replaced."""
        return Columns({**self._data, **columns})

    def to_frame(self) -> pd.DataFrame:
        """The same columns as a DataFrame (object columns stay object)."""
        return pd.DataFrame(
            {
                name: pd.Series(v, dtype=object) if v.dtype == object else v
                for name, v in self._data.items()
            }
        )

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """The rows of `parts` one after another (the columns of the first part)."""
        names = parts[0].columns
        return Columns({name: np.concatenate([part[name] for part in parts]) for name in names})


Table = pd.DataFrame | Columns


# A column of a DataFrame (Series) or of Columns (ndarray) as the array blocking reads.
def as_objects(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values if values.dtype == object else values.astype(object)
    return values.to_numpy(dtype=object)


def as_strings(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return np.array([str(v) for v in values], dtype=object)
    return values.astype(str).to_numpy(dtype=object)


def as_days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as days since the epoch."""
    if isinstance(values, np.ndarray):
        return values.astype("datetime64[D]").astype(np.int64)
    return values.to_numpy("datetime64[D]").astype(np.int64)


def with_open_amount(invoices: Table) -> Table:
    """`invoices`, with `open_amount` the amount where the column is missing."""
    if "open_amount" in invoices:
        return invoices
    return invoices.assign(open_amount=np.asarray(invoices["amount"], dtype=np.float64))


def as_frame(table: Table) -> pd.DataFrame:
    """A table as a DataFrame (Columns are converted)."""
    return table if isinstance(table, pd.DataFrame) else table.to_frame()
