"""Tables in and out: CK records into an immutable `Dataset`, every other table into a `DataTable`, and back.

This subpackage is the only place where carkin reads or writes tables with pandas; everything downstream
works on the arrays of `Dataset` or on a `DataTable`'s frame. Provenance travels with what it returns:
``Dataset.simulated`` and ``DataTable.simulated`` say whether the data are simulated (`says_simulated`).
"""

from ._dataset import Dataset as Dataset, FlatObservations as FlatObservations
from ._read import (
    data_hash as data_hash,
    load_dataset as load_dataset,
    read_ck as read_ck,
    read_covariates as read_covariates,
)
from ._table import DataTable as DataTable, read_table as read_table, says_simulated as says_simulated
from ._write import (
    SIMULATED_NOTE as SIMULATED_NOTE,
    write_ck as write_ck,
    write_covariates as write_covariates,
    write_table as write_table,
)
