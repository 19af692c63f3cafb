"""Table files as people have them, read into a pandas DataFrame.

- CSV-like text (`.csv`, `.txt`, any other suffix): the delimiter (`,` `;` tab `|`) is detected with
  `csv.Sniffer` on the first lines (`.tsv`/`.tab` are tab-separated); a semicolon-separated file whose
  numbers use a decimal comma (`3,5`) is read with that comma. The text is UTF-8 unless `encoding` says
  otherwise; a file that is not UTF-8 is read with the encoding charset-normalizer detects (a warning
  names it and the equally plausible ones; cp1252 wins a tie), or stops with one sentence naming
  `data.encoding` when none fits.
- Parquet (`.parquet`, `.pq`) needs pyarrow; Excel (`.xlsx`, `.xlsm`: the first sheet) needs openpyxl.
  Without the package the file is refused in one sentence that says what to install, or to save as CSV.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from functools import lru_cache
from pathlib import Path

import charset_normalizer
import pandas as pd

from src.errors import UserError, require

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
TAB_SUFFIXES = (".tsv", ".tab")
DELIMITERS = ",;\t|"
SNIFF_CHARS = 64 * 1024
DECIMAL_COMMA = re.compile(r"(?:^|;)\s*-?\d+,\d+\s*(?:;|$)", re.MULTILINE)


def read_table(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """The table at `path` (a fresh copy); one sentence if it cannot be read."""
    path = Path(str(path)).expanduser()
    require(path.is_file(), f"there is no table at {path}; pass data.path=FILE (a .csv, .xlsx or .parquet file).")
    stat = path.stat()
    return _read_table(str(path.resolve()), stat.st_size, stat.st_mtime_ns, encoding).copy()


@lru_cache(maxsize=4)
def _read_table(path: str, size: int, mtime_ns: int, encoding: str | None) -> pd.DataFrame:
    """Read once per process while the file is unchanged (`size` and `mtime_ns` are part of the key)."""
    suffix = Path(path).suffix.lower()
    kind = "Parquet" if suffix in PARQUET_SUFFIXES else "Excel" if suffix in EXCEL_SUFFIXES else "CSV"
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        if suffix in EXCEL_SUFFIXES:
            return pd.read_excel(path, sheet_name=0, engine="openpyxl")
        if suffix == ".xls":
            raise UserError(f"{path} is an old-style Excel file (.xls); save the sheet as .xlsx or as CSV.")
        return read_text_table(Path(path), encoding)
    except ImportError as exc:
        package, extra = ("pyarrow", "parquet") if kind == "Parquet" else ("openpyxl", "excel")
        raise UserError(f"reading the {kind} file {path} needs {package}; install it with pip install '.[{extra}]' "
                        f"(or pip install {package}), or save the table as CSV.") from exc
    except UserError:
        raise
    except (ValueError, OSError, KeyError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{path} cannot be read as a {kind} table ({first}); check the file.") from exc


def read_text_table(path: Path, encoding: str | None) -> pd.DataFrame:
    """A delimited text table: encoding and delimiter detected unless given (module docstring)."""
    raw = path.read_bytes()
    text = decode(raw, path, encoding)
    sample = text[:SNIFF_CHARS]
    sep = "\t" if path.suffix.lower() in TAB_SUFFIXES else delimiter_of(sample)
    decimal = "," if sep == ";" and DECIMAL_COMMA.search(sample) else "."
    return pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal)


def decode(raw: bytes, path: Path, encoding: str | None) -> str:
    """The file's text: in `encoding`, else UTF-8, else the encoding charset-normalizer detects."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError as exc:
            raise UserError(f"data.encoding={encoding} is not an encoding Python knows; use e.g. utf-8, latin-1 "
                            "or cp1252.") from exc
        except UnicodeDecodeError as exc:
            raise UserError(f"{path} is not {encoding} text (byte {exc.start} cannot be decoded); set data.encoding "
                            "to the file's encoding, or to null to detect it.") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    matches = list(charset_normalizer.from_bytes(raw))
    require(bool(matches), f"{path} is not UTF-8 text and its encoding cannot be detected; set data.encoding to the "
                           "file's encoding (e.g. data.encoding=latin-1), or save it as UTF-8.")
    # Short texts often fit several code pages equally well; Windows' Western cp1252 (latin-1's superset) is then
    # the likeliest origin of a spreadsheet's export, so it wins a tie.
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least]
    chosen = next((m for m in tied if m.encoding == "cp1252"), tied[0])
    others = ", ".join(m.encoding for m in tied if m is not chosen)
    log.warning("%s is not UTF-8: read as %s (detected%s); set data.encoding=... if that is wrong.", path,
                chosen.encoding, f"; as plausible: {others}" if others else "")
    return str(chosen)


def delimiter_of(sample: str) -> str:
    """The delimiter `csv.Sniffer` finds in the first lines (`,` when there is only one column)."""
    lines = sample.splitlines()
    head = "\n".join(lines[:50] if len(lines) > 1 else lines)
    try:
        return csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","
