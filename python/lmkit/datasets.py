"""``datasets``' ``load_dataset``, ``Dataset`` and ``DatasetDict``. The table lives in Rust;
selecting, shuffling and splitting use the same seeded permutations as ``lmkit finetune``."""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence as Seq, Union

import numpy as np

from . import _lmkit


class Value:
    """A plain column type: ``Value("string")``, ``Value("int64")``..."""

    def __init__(self, dtype: str):
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"Value(dtype='{self.dtype}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and other.dtype == self.dtype


class Sequence:
    """A list column (token ids)."""

    def __init__(self, feature: Value):
        self.feature = feature

    def __repr__(self) -> str:
        return f"Sequence(feature={self.feature!r})"


class ClassLabel:
    """Integer class ids with names: ``names``, ``num_classes``, ``int2str``, ``str2int``."""

    def __init__(self, names: Optional[List[str]] = None, num_classes: Optional[int] = None):
        if names is None:
            if num_classes is None:
                raise ValueError("ClassLabel needs names= or num_classes=")
            names = [str(i) for i in range(num_classes)]
        self.names = list(names)
        self.num_classes = len(self.names)

    def int2str(self, values: Union[int, Seq[int], np.ndarray]) -> Union[str, List[str]]:
        """Class names of ids (one id or a list)."""
        def one(i: Any) -> str:
            i = int(i)
            if not 0 <= i < self.num_classes:
                raise ValueError(f"class id {i} is out of range for {self.num_classes} classes")
            return self.names[i]

        if isinstance(values, (int, np.integer)):
            return one(values)
        return [one(v) for v in values]

    def str2int(self, values: Union[str, Seq[str]]) -> Union[int, List[int]]:
        """Ids of class names (one name or a list)."""
        def one(s: str) -> int:
            try:
                return self.names.index(s)
            except ValueError:
                raise ValueError(f"{s!r} is not a class name ({', '.join(self.names)})") from None

        if isinstance(values, str):
            return one(values)
        return [one(v) for v in values]

    def __repr__(self) -> str:
        return f"ClassLabel(names={self.names})"


def _columns_for_rust(batch: Dict[str, Any]) -> Dict[str, list]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, (list, tuple)):
            v = [x.tolist() if isinstance(x, np.ndarray) else x for x in v]
        else:
            raise TypeError(f"column {k!r}: the function returned a {type(v).__name__}, not a list")
        out[k] = v
    return out


class Dataset:
    """One split: rows of named, typed columns."""

    def __init__(self, native: "_lmkit.Dataset"):
        self._d = native

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, mapping: Dict[str, Any], features: Optional[Dict[str, Any]] = None) -> "Dataset":
        """Columns from a dict of lists; ``features={"label": ClassLabel(names=[...])}`` names classes."""
        labels = {k: f.names for k, f in (features or {}).items() if isinstance(f, ClassLabel)}
        return cls(_lmkit.Dataset.from_columns(_columns_for_rust(mapping), "dict", labels or None))

    @classmethod
    def from_pandas(cls, df: Any) -> "Dataset":
        return cls.from_dict({c: df[c].tolist() for c in df.columns})

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._d)

    @property
    def num_rows(self) -> int:
        """The number of rows."""
        return len(self._d)

    @property
    def column_names(self) -> List[str]:
        """The columns, in order."""
        return list(self._d.column_names)

    @property
    def features(self) -> Dict[str, Any]:
        """Each column's type: ``Value``, ``ClassLabel`` or ``Sequence``."""
        out: Dict[str, Any] = {}
        for name, kind, dtype, names in self._d.features():
            if kind == "ClassLabel":
                out[name] = ClassLabel(names=names)
            elif kind == "Sequence":
                out[name] = Sequence(Value(dtype))
            else:
                out[name] = Value(dtype)
        return out

    def __getitem__(self, key: Union[int, str, slice, Seq[int]]) -> Any:
        """``ds[0]`` a row (dict), ``ds["text"]`` a column (numbers as numpy arrays),
        ``ds[:5]`` or ``ds[[1, 3]]`` a dict of columns."""
        if isinstance(key, str):
            return self._d.column(key)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if i < 0:
                i += len(self)
            return self._d.row(i)
        if isinstance(key, slice):
            idx = list(range(len(self)))[key]
        else:
            idx = [int(i) for i in key]
        sub = self._d.select(idx)
        return {c: sub.column(c) for c in sub.column_names}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for i in range(len(self)):
            yield self._d.row(i)

    def __repr__(self) -> str:
        return f"Dataset({{\n    features: {self.column_names},\n    num_rows: {len(self)}\n}})"

    def to_dict(self) -> Dict[str, Any]:
        """Every column by name (numbers as numpy arrays)."""
        return {c: self._d.column(c) for c in self.column_names}

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame({c: list(v) if not isinstance(v, np.ndarray) else v for c, v in self.to_dict().items()})

    # -- transforming ---------------------------------------------------------------------
    def select(self, indices: Union[Seq[int], range, np.ndarray]) -> "Dataset":
        """The rows at these indices, in this order."""
        idx = [int(i) for i in indices]
        if any(i < 0 for i in idx):
            raise IndexError("select: indices must be >= 0")
        return Dataset(self._d.select(idx))

    def shuffle(self, seed: Optional[int] = None) -> "Dataset":
        """A seeded permutation (a random seed when none is given)."""
        return Dataset(self._d.shuffle(random.randrange(2**63) if seed is None else int(seed)))

    def train_test_split(
        self,
        test_size: Union[float, int, None] = None,
        train_size: Union[float, int, None] = None,
        shuffle: bool = True,
        seed: Optional[int] = None,
        stratify_by_column: Optional[str] = None,
    ) -> "DatasetDict":
        """Splits off a test part (a fraction, or a row count); stratified by a label column if asked."""
        n = len(self)
        if test_size is None:
            test_size = 0.25 if train_size is None else (1 - train_size if isinstance(train_size, float) else n - train_size)
        frac = test_size / n if isinstance(test_size, int) and not isinstance(test_size, bool) else float(test_size)
        if not shuffle:
            if stratify_by_column is not None:
                raise ValueError("stratify_by_column needs shuffle=True")
            cut = n - int(round(frac * n))
            return DatasetDict({"train": self.select(range(cut)), "test": self.select(range(cut, n))})
        seed = random.randrange(2**63) if seed is None else int(seed)
        train, test = self._d.train_test_split(frac, seed, stratify_by_column)
        return DatasetDict({"train": Dataset(train), "test": Dataset(test)})

    def map(
        self,
        function: Optional[Callable[..., Any]] = None,
        batched: bool = False,
        batch_size: Optional[int] = 1000,
        remove_columns: Union[str, List[str], None] = None,
        fn_kwargs: Optional[Dict[str, Any]] = None,
        desc: Optional[str] = None,
    ) -> "Dataset":
        """Adds the columns ``function`` returns: with ``batched=True`` it gets a dict of lists
        (``batch_size=None``: the whole split at once), else one row at a time."""
        from ._progress import Progress

        fn_kwargs = fn_kwargs or {}
        out: Dict[str, list] = {}
        n = len(self)
        if function is not None:
            if batched:
                bs = n if batch_size is None or batch_size <= 0 else batch_size
                starts = list(range(0, n, max(bs, 1)))
                bar = Progress(len(starts), desc or "Map", disable=len(starts) < 2)
                for s in starts:
                    res = function(self[s : s + bs], **fn_kwargs)
                    if res is None:
                        continue
                    for k, v in _columns_for_rust(dict(res)).items():
                        if len(v) != min(bs, n - s):
                            raise ValueError(
                                f"map: column {k!r} has {len(v)} rows for a batch of {min(bs, n - s)}"
                            )
                        out.setdefault(k, []).extend(v)
                    bar.update(1)
                bar.close()
            else:
                for i in range(n):
                    res = function(self._d.row(i), **fn_kwargs)
                    if res is None:
                        continue
                    for k, v in dict(res).items():
                        out.setdefault(k, []).append(v.tolist() if isinstance(v, np.ndarray) else v)
        d = self._d.with_columns(_columns_for_rust(out)) if out else self._d
        if remove_columns:
            d = d.remove_columns([remove_columns] if isinstance(remove_columns, str) else list(remove_columns))
        return Dataset(d)

    def filter(self, function: Callable[[Dict[str, Any]], bool]) -> "Dataset":
        """The rows for which ``function(row)`` is true."""
        return self.select([i for i in range(len(self)) if function(self._d.row(i))])

    def remove_columns(self, column_names: Union[str, List[str]]) -> "Dataset":
        """A copy without these columns."""
        names = [column_names] if isinstance(column_names, str) else list(column_names)
        return Dataset(self._d.remove_columns(names))

    def rename_column(self, original_column_name: str, new_column_name: str) -> "Dataset":
        """A copy with one column renamed."""
        return Dataset(self._d.rename_column(original_column_name, new_column_name))

    def cast_column(self, column: str, feature: Any) -> "Dataset":
        """Makes an integer column a ClassLabel: ``cast_column('label', ClassLabel(names=[...]))``."""
        if not isinstance(feature, ClassLabel):
            raise ValueError("cast_column takes a ClassLabel here")
        return Dataset(self._d.with_class_label(column, feature.names))

    def to_tf_dataset(
        self,
        columns: Optional[List[str]] = None,
        label_cols: Optional[str] = None,
        shuffle: bool = False,
        batch_size: int = 8,
        **kwargs: Any,
    ) -> "BatchedView":
        """The course's Keras input: a batched view that ``model.fit`` and ``model.predict`` take."""
        return BatchedView(self, columns, label_cols, shuffle, batch_size)


class BatchedView:
    """A split with batch settings, what ``to_tf_dataset`` returns here (no tensorflow)."""

    def __init__(self, ds: Dataset, columns: Optional[List[str]], label_cols: Optional[str], shuffle: bool, batch_size: int):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        missing = [c for c in (columns or []) + ([label_cols] if label_cols else []) if c not in ds.column_names]
        if missing:
            raise ValueError(f"columns {missing} are not in the data set ({ds.column_names})")
        if label_cols and label_cols != "label":
            ds = ds.rename_column(label_cols, "label")
        self.dataset, self.batch_size, self.shuffle = ds, batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)


class DatasetDict(dict):
    """Splits by name, as ``datasets.DatasetDict``."""

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {k}: {v!r}".replace("\n", "\n    ") for k, v in self.items())
        return "DatasetDict({\n" + inner + "\n})"

    def map(self, function: Optional[Callable[..., Any]] = None, **kwargs: Any) -> "DatasetDict":
        """``Dataset.map`` on every split."""
        return DatasetDict({k: v.map(function, **kwargs) for k, v in self.items()})

    def shuffle(self, seed: Optional[int] = None) -> "DatasetDict":
        """``Dataset.shuffle`` on every split (the same seed)."""
        return DatasetDict({k: v.shuffle(seed) for k, v in self.items()})

    def remove_columns(self, column_names: Union[str, List[str]]) -> "DatasetDict":
        """``Dataset.remove_columns`` on every split."""
        return DatasetDict({k: v.remove_columns(column_names) for k, v in self.items()})

    def rename_column(self, original_column_name: str, new_column_name: str) -> "DatasetDict":
        """``Dataset.rename_column`` on every split."""
        return DatasetDict({k: v.rename_column(original_column_name, new_column_name) for k, v in self.items()})

    @property
    def column_names(self) -> Dict[str, List[str]]:
        """Each split's columns."""
        return {k: v.column_names for k, v in self.items()}

    @property
    def num_rows(self) -> Dict[str, int]:
        """Each split's row count."""
        return {k: len(v) for k, v in self.items()}


_ORDER = {"train": 0, "validation": 1, "test": 2}


def load_dataset(path: Union[str, os.PathLike], split: Optional[str] = None, **kwargs: Any) -> Union[DatasetDict, Dataset]:
    """A known data set ("emotion", "sst2", "nsmc"...), a Hugging Face cache entry, a file
    (CSV, JSON lines, Parquet) or a folder of split files."""
    splits = _lmkit.load_dataset(os.fspath(path))
    dd = DatasetDict(
        (k, Dataset(v)) for k, v in sorted(splits, key=lambda kv: (_ORDER.get(kv[0], 3), kv[0]))
    )
    if split is not None:
        if split not in dd:
            raise ValueError(f"no split {split!r} in {path} (it has: {', '.join(dd)})")
        return dd[split]
    return dd
